"""A municipality's numbers over real gRPC: the services' own applications record a winter of
stays (admission notices answered in time, late or never; patients ready for discharge at the
end of January and received in February; a colorectal cancer pathway), the projector's batch
path folds their events into a real read model (SQLite, and PostgreSQL), and PathwayService's
Statistics answers per month — with the access policy and the audit log of every server, and
a figure resting on a single patient suppressed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from carepath.v1 import pathway_pb2, pathway_pb2_grpc
from services.admissions.application import AdmissionsApplication
from services.admissions.domain import AdmissionType, message_id_for
from services.discharges.application import DischargesApplication
from services.discharges.domain import Destination, ReadinessContent
from services.pathway import api as pathway_api
from services.pathway import migrate, projector, readmodel
from services.referrals.application import ReferralsApplication
from services.referrals.domain import CancerMilestone, CancerPathway, Priority, Treatment
from services.registry.application import RegistryApplication
from shared import rules
from shared.access.model import OPERATOR_ROLE
from shared.actors import Actor, OrgKind
from shared.apprec import AppRecStatus
from shared.audit.log import audit_log
from shared.domain import CommandContext
from shared.ids import FNR_SYSTEM
from shared.outbox import iter_all_envelopes
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_MUNICIPALITY
from tests.support import READINESS_NOTICE, REGISTER_ADAPTER, auth, grpc_server, make_fnr

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
JAN_20 = datetime(2026, 1, 20, 9, 0, tzinfo=UTC)
#: Six residents of MUNICIPALITY, one of OTHER_MUNICIPALITY.
OURS = [{"system": FNR_SYSTEM, "value": make_fnr(3 + i, 2, 47, 300)} for i in range(6)]
THEIRS = {"system": FNR_SYSTEM, "value": make_fnr(21, 7, 39, 300)}
OPERATOR = Actor(
    her_id=REGISTER_ADAPTER.her_id, org_kind=OrgKind.REGISTRY, roles=frozenset({OPERATOR_ROLE})
)


def ctx(actor: Actor, hours: float) -> CommandContext:
    """A command `hours` after 20 January 09:00 UTC (clinical time)."""
    return CommandContext(uuid.uuid4().hex, JAN_20 + timedelta(hours=hours), actor, "winter")


def winter() -> list[Any]:
    """Every event of the story, as the services publish them (the public contract)."""
    registry = RegistryApplication(env=POPO)
    admissions = AdmissionsApplication(env=POPO)
    discharges = DischargesApplication(env=POPO)
    referrals = ReferralsApplication(env=POPO)
    everyone = [(p, MUNICIPALITY) for p in OURS] + [(THEIRS, OTHER_MUNICIPALITY)]
    for i, (patient, municipality) in enumerate(everyone):
        registry.record_residence(
            ctx(REGISTER_ADAPTER, -500), patient, municipality.her_id, date(2000, 1, 1)
        )
        stay = admissions.admit_patient(
            ctx(HOSPITAL, i / 60), patient, "Med 2", AdmissionType.ACUTE, None,
            municipality.her_id, True, False,
        )  # fmt: skip
        discharges.stays.admitted(str(stay.id), patient, HOSPITAL.her_id, municipality.her_id)
        notice = ctx(HOSPITAL, 1)  # 10:00, its receipt due at 12:00
        admissions.send_admission_notice(notice, stay.id)
        answered = {0: 1.5, 1: 1.5, 2: 1.5, 3: 1.5, 4: 5.0}.get(i)  # the 6th never answers
        if answered is not None or patient is THEIRS:
            admissions.record_message_receipt(
                ctx(municipality, answered or 1.5), stay.id,
                message_id_for(stay.id, notice.command_id), AppRecStatus.OK, [],
            )  # fmt: skip
        info = ctx(HOSPITAL, 2)  # the first Helseopplysninger, in time (the payment's § 8)
        admissions.send_health_information(info, stay.id)
        admissions.record_message_receipt(
            ctx(municipality, 2.5), stay.id,
            message_id_for(stay.id, info.command_id), AppRecStatus.OK, [],
        )  # fmt: skip
        if i == 5:
            continue  # still in hospital, never declared ready
        notice_of_readiness = ReadinessContent(**READINESS_NOTICE)  # all the regulation asks
        discharges.declare_ready(ctx(HOSPITAL, 8 * 24), stay.id, notice_of_readiness)  # 28 Jan
        discharges.discharge(ctx(HOSPITAL, 13 * 24 + 1), stay.id, Destination.HOME, None)  # 2 Feb
    cancer = referrals.send_referral(
        ctx(GP, -18 * 24), OURS[0], HOSPITAL.her_id, "Blod i avføringen", Priority.URGENT,
        CancerPathway.COLORECTAL,
    )  # fmt: skip
    referrals.record_receipt(ctx(HOSPITAL, -17 * 24), cancer.id, AppRecStatus.OK, [])
    for hours, milestone, treatment in (
        (-12 * 24, CancerMilestone.FIRST_APPOINTMENT, None),
        (-5 * 24, CancerMilestone.INVESTIGATION_COMPLETED, Treatment.SURGERY),
        (14 * 24, CancerMilestone.TREATMENT_START, Treatment.SURGERY),  # 3 February
    ):
        referrals.record_cancer_milestone(ctx(HOSPITAL, hours), cancer.id, milestone, treatment)
    return [
        e
        for app in (registry, admissions, discharges, referrals)
        for e in iter_all_envelopes(app.name, app)
    ]


Served = tuple[pathway_pb2_grpc.PathwayServiceStub, dict[str, str]]


@pytest.fixture(params=["sqlite", "postgres"])
def statistics(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """The story folded into a read model by the projector's batch path (two batches, as the
    queue delivers them), served by the pathway's gRPC server as its process serves it."""
    urls = {name: f"sqlite:///{tmp_path}/{name}.sqlite" for name in ("audit", "revocations")}
    if request.param == "sqlite":
        urls["pathway"] = f"sqlite:///{tmp_path}/pathway.sqlite"
    else:
        urls["pathway"] = request.getfixturevalue("postgres_url")
    engine = readmodel.create_engine(urls["pathway"])
    migrate.upgrade(engine)
    events = winter()
    half = len(events) // 2
    for batch in (events[:half], events[half:]):
        with engine.begin() as conn:
            projector.project(conn, batch)
    with grpc_server(
        "statistics", pathway_api, engine, urls, ACCESS_DATABASE_URL=urls["pathway"]
    ) as server:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        yield pathway_pb2_grpc.PathwayServiceStub(channel), urls
        channel.close()
    engine.dispose()


def ask(
    stub: pathway_pb2_grpc.PathwayServiceStub, caller: Actor, her_id: str, first: int, last: int
) -> pathway_pb2.StatisticsResponse:
    """Months of 2026, first to last."""
    reply: pathway_pb2.StatisticsResponse = stub.Statistics(
        pathway_pb2.StatisticsRequest(
            municipality_her_id=her_id,
            from_month=pathway_pb2.YearMonth(year=2026, month=first),
            to_month=pathway_pb2.YearMonth(year=2026, month=last),
        ),
        metadata=auth(caller),
    )
    return reply


def test_a_municipality_sees_its_winter_month_by_month(
    statistics: Served,
) -> None:
    """January: five patients ready on the 28th wait four døgn each (28–31), the sixth never
    declared ready (each period payable: notices in time, a complete readiness notice);
    seventeen messages to the municipality — six admission notices (four answered within two
    hours, one late, one never), six Helseopplysninger answered in time and five readiness
    notices nobody answered.
    February: the same five wait one døgn more (received on the 2nd, so the 1st), their five
    Melding om utskrevet pasient go unanswered, and the one
    cancer pathway that started treatment rests on one patient: suppressed."""
    stub, _ = statistics
    reply = ask(stub, MUNICIPALITY, MUNICIPALITY.her_id, 1, 3)
    assert reply.suppression_threshold == 5
    jan, feb, mar = reply.months
    assert [(m.month.year, m.month.month) for m in reply.months] == [
        (2026, 1),
        (2026, 2),
        (2026, 3),
    ]
    assert (jan.waiting_days.patients, jan.waiting_days.days) == (5, 20)
    assert (feb.waiting_days.patients, feb.waiting_days.days) == (5, 5)
    try:
        assert jan.waiting_days.amount_nok == 20 * rules.daily_rate(2026)
    except rules.MissingRule as missing:
        assert jan.waiting_days.amount_unavailable_reason == str(missing)
    m = jan.messages
    assert (m.patients, m.messages, m.answered_in_time, m.answered_late) == (6, 17, 10, 1)
    assert (m.unanswered_overdue, m.pending, m.suppressed) == (6, 0, False)
    assert m.share_in_time == pytest.approx(10 / 17)
    # the five Melding om utskrevet pasient of 2 February, which nobody receipted
    assert feb.messages == pathway_pb2.MessageStatistics(
        patients=5, messages=5, unanswered_overdue=5
    )
    assert feb.cancer_pathways == pathway_pb2.CancerPathwayStatistics(suppressed=True)
    assert jan.cancer_pathways == pathway_pb2.CancerPathwayStatistics()  # a true zero: shown
    assert (mar.waiting_days.patients, mar.waiting_days.days) == (0, 0)
    assert (mar.messages, mar.cancer_pathways) == (
        pathway_pb2.MessageStatistics(),
        pathway_pb2.CancerPathwayStatistics(),
    )


def test_a_small_municipalitys_single_patient_is_never_shown(
    statistics: Served,
) -> None:
    """The other municipality had one patient ready in January: its døgn, its amount and its
    messages are left out, not shown as 1 patient (who would be easy to name)."""
    stub, _ = statistics
    (jan,) = ask(stub, OTHER_MUNICIPALITY, OTHER_MUNICIPALITY.her_id, 1, 1).months
    assert jan.waiting_days == pathway_pb2.WaitingDaysStatistics(suppressed=True)
    assert jan.messages == pathway_pb2.MessageStatistics(suppressed=True)


def test_only_the_municipality_itself_and_carepaths_operators_may_ask(
    statistics: Served,
) -> None:
    """Another municipality, the hospital and a register organisation without the operator
    role are refused; the operator reads any municipality's numbers; each call is on the audit
    log with its ground (no patient named)."""
    stub, urls = statistics
    for caller in (OTHER_MUNICIPALITY, HOSPITAL, REGISTER_ADAPTER, GP):
        with pytest.raises(grpc.RpcError) as refused:
            ask(stub, caller, MUNICIPALITY.her_id, 1, 2)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    by_operator = ask(stub, OPERATOR, MUNICIPALITY.her_id, 1, 2)
    assert by_operator.months[0].waiting_days.days == 20
    ask(stub, MUNICIPALITY, MUNICIPALITY.her_id, 1, 1)
    audit = sa.create_engine(urls["audit"])
    log = audit_log
    query = (
        sa.select(log.c.actor_her_id, log.c.outcome, log.c.basis, log.c.purpose, log.c.patient_key)
        .where(log.c.call == "PathwayService/Statistics")
        .order_by(log.c.id)
    )
    with audit.connect() as conn:
        rows = [tuple(r) for r in conn.execute(query)]
    audit.dispose()
    refused = [(c.her_id, "PERMISSION_DENIED", "", "STATISTICS", None) for c in (
        OTHER_MUNICIPALITY, HOSPITAL, REGISTER_ADAPTER, GP)]  # fmt: skip
    assert rows[-6:] == [
        *refused,
        (OPERATOR.her_id, "OK", "OPERATOR", "STATISTICS", None),
        (MUNICIPALITY.her_id, "OK", "OWN_ORGANISATION", "STATISTICS", None),
    ]


def test_a_month_range_the_service_cannot_answer_names_the_field(
    statistics: Served,
) -> None:
    stub, _ = statistics
    for first, last in ((3, 1), (1, 13)):
        with pytest.raises(grpc.RpcError) as bad:
            ask(stub, MUNICIPALITY, MUNICIPALITY.her_id, first, last)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "to_month" in (bad.value.details() or "")
    with pytest.raises(grpc.RpcError) as missing:
        stub.Statistics(
            pathway_pb2.StatisticsRequest(municipality_her_id=MUNICIPALITY.her_id),
            metadata=auth(MUNICIPALITY),
        )
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "from_month" in (missing.value.details() or "")
