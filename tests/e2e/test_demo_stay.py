"""The demo stay end to end, as `make run` loads it: an 84-year-old with home nursing, through
all four services over gRPC, the real broker and the nameko reactions, told by one pathway.

Ready for discharge on Friday 15 November 2024, the municipality can receive her on Tuesday:
four payment days at the 2024 rate. A rebuild from the four stores gives the same read model.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import ModuleType

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from carepath.v1 import (
    common_pb2,
    municipal_pb2,
    pathway_pb2,
    pathway_pb2_grpc,
    referrals_pb2,
)
from services.pathway import migrate, readmodel
from services.pathway.rebuild import rebuild
from shared.auth import bearer_metadata
from shared.broker import Tenant
from shared.ids import FNR_SYSTEM
from shared.times import OSLO
from tests.processes import demo_reactions
from tests.support import (
    ISSUER,
    Harness,
    demo_module,
    drain_queue,
    dump_read_model,
    load_demo,
    projector_queue,
    running_system,
    wait_for,
)


def pathway_of(system: Harness, demo: ModuleType) -> Callable[..., pathway_pb2.Pathway]:
    stub = pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server))
    token = bearer_metadata(ISSUER.mint(demo.COORDINATOR))

    def get(**kw: object) -> pathway_pb2.Pathway:
        return stub.GetPathway(
            pathway_pb2.GetPathwayRequest(
                patient=common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=demo.PATIENT),
                purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
                **kw,
            ),
            metadata=token,
        )

    return get


def at_oslo(*args: int) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(datetime(*args, tzinfo=OSLO))  # type: ignore[misc]
    return t


def test_the_demo_stay_tells_the_whole_story_and_rebuilds_identically(
    backend: dict[str, str], broker: Tenant, amqp_uri: str, tmp_path: object
) -> None:
    demo = demo_module()
    queue = projector_queue("demo")
    with (
        running_system(backend, broker, queue) as system,
        demo_reactions(broker, backend),
    ):
        expected = load_demo(system, demo)
        get = pathway_of(system, demo)

        def complete() -> pathway_pb2.Pathway | None:
            try:
                reply = get()
            except grpc.RpcError:
                return None
            # The commands' own events, and the stay closed by admissions' reaction to the
            # discharge (it comes last, through the broker twice).
            closed = any(e.event_type == "StayClosed" for e in reply.timeline)
            return reply if len(reply.timeline) >= expected and closed else None

        reply = wait_for(complete, timeout=60, what="the whole demo story in the pathway")
        types = [e.event_type for e in reply.timeline]
        assert types.index("AdmissionReportReceived") < types.index("AdmissionNoticeSent")
        assert "StayClosed" in types  # closed in admissions by the reaction to the discharge
        assert reply.location.kind == pathway_pb2.LOCATION_KIND_SHORT_TERM_NURSING_HOME
        assert reply.location.her_id == demo.NURSING_HOME
        [place] = reply.municipal_services  # decided the day before, started on arrival
        assert (place.kind, place.state, place.institution_her_id) == (
            municipal_pb2.MUNICIPAL_SERVICE_KIND_SHORT_TERM_STAY,
            municipal_pb2.MUNICIPAL_SERVICE_STATE_STARTED,
            demo.NURSING_HOME,
        )
        assert reply.location.since == place.started_at
        (payment,) = reply.payments
        assert (payment.days, payment.amount_nok, payment.ongoing) == (4, 4 * 5745, False)
        assert (payment.ready_on.day, payment.until.day) == (15, 19)
        # The notices went within 24 hours and the readiness notice says what it must: owed.
        assert payment.payable and payment.amount_owed_nok == 4 * 5745
        assert [r.state for r in reply.summary.referrals] == [
            referrals_pb2.REFERRAL_STATE_ACCEPTED,
            referrals_pb2.REFERRAL_STATE_CANCELLED,
        ]
        # hospital B's colorectal pathway: the investigation took 14 days of its 12
        cancer = reply.summary.referrals[0].cancer_milestones
        assert [(m.standard_days, m.late) for m in cancer] == [(9, False), (12, True), (14, False)]
        assert not [t for t in reply.tasks if "CANCER" in pathway_pb2.TaskKind.Name(t.kind)]
        receipts = {m.name: m.receipt for m in reply.messages}
        assert receipts["Melding om innlagt pasient"] == common_pb2.APP_REC_STATUS_OK
        assert receipts["Henvisning"] == common_pb2.APP_REC_STATUS_OK_ERROR_IN_PART
        assert receipts["Epikrise"] == common_pb2.APP_REC_STATUS_UNSPECIFIED  # unanswered
        # the municipality's Forespørsel to the fastlege and the GP's Svar, both receipted
        assert receipts["Forespørsel"] == common_pb2.APP_REC_STATUS_OK
        assert receipts["Svar på forespørsel"] == common_pb2.APP_REC_STATUS_OK
        assert not [t for t in reply.tasks if t.kind == pathway_pb2.TASK_KIND_CORRESPONDENCE_ANSWER]
        (stay,) = reply.stays
        assert stay.admitted_at.ToDatetime().day == 12 and stay.closed_at.ToDatetime().day == 19
        doses = {e.medication.name: e.dose for e in reply.medications.entries}
        assert doses == {"Metformin": "500 mg x 2", "Ramipril": "2.5 mg x 1"}
        before = get(medications_at=at_oslo(2024, 11, 1, 12, 0))
        assert {e.medication.name: e.dose for e in before.medications.entries} == {
            "Metformin": "500 mg x 2",
            "Ramipril": "5 mg x 1",
        }
        assert reply.medications.last_reconciliation.reconciled_by.organisation.her_id == (
            demo.GP.her_id
        )
        # the register facts, and the organisations by their names in the directory
        assert (reply.relations.residence_municipality_her_id, reply.relations.fastlege_her_id) == (
            demo.COORDINATOR.her_id,
            demo.GP.her_id,
        )
        names = {o.her_id: o.name for o in reply.organisations}
        assert names[demo.COORDINATOR.her_id] == "Fjordvik kommune"
        assert names[demo.NURSING_HOME] == "Fjordvik helsehus, korttidsavdeling"
        assert reply.access_basis == common_pb2.ACCESS_BASIS_RESIDENCE_MUNICIPALITY

        live = dump_read_model(system.engine)
        rebuilt = readmodel.create_engine(f"sqlite:///{tmp_path}/rebuilt.sqlite")
        migrate.upgrade(rebuilt)
        rebuild(rebuilt, system.apps)
        assert dump_read_model(rebuilt) == live
    drain_queue(amqp_uri, queue)
