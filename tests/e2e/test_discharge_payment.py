"""Payment for a patient ready for discharge over New Year: each day at its own year's rate,
through admissions, discharges (and its view of stays, kept by its nameko reaction) and the
pathway. The patient lives in MUNICIPALITY (registered as the register adapter does): it
answers the readiness, reads the pathway and pays."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from uuid import UUID

import grpc
import pytest

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    discharges_pb2,
    discharges_pb2_grpc,
    pathway_pb2,
    pathway_pb2_grpc,
)
from services.discharges.application import DischargesApplication
from shared.broker import Tenant
from shared.ids import FNR_SYSTEM
from shared.times import OSLO
from tests.conftest import HOSPITAL, MUNICIPALITY
from tests.processes import nameko
from tests.support import (
    Harness,
    auth,
    drain_queue,
    make_fnr,
    meta,
    projector_queue,
    running_system,
    wait_for,
)

PATIENT = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(24, 12, 38, 200))


@pytest.fixture
def system(backend: dict[str, str], broker: Tenant, amqp_uri: str) -> Iterator[Harness]:
    queue = projector_queue("e2e")
    with (
        running_system(backend, broker, queue) as harness,
        nameko("services.discharges.reactions", broker, backend),
    ):
        yield harness
    drain_queue(amqp_uri, queue)


@pytest.fixture(autouse=True)
def registered(system: Harness) -> None:
    system.register(
        {"system": PATIENT.system, "value": PATIENT.value}, municipality=MUNICIPALITY.her_id
    )


def test_ready_on_30_december_received_on_3_january_costs_two_days_of_each_years_rate(
    system: Harness,
) -> None:
    admissions = admissions_pb2_grpc.AdmissionServiceStub(
        system.channel(system.servers["admissions"])
    )
    discharges = discharges_pb2_grpc.DischargeServiceStub(
        system.channel(system.servers["discharges"])
    )
    stay = admissions.AdmitPatient(
        admissions_pb2.AdmitPatientRequest(
            metadata=meta("admit", datetime(2023, 12, 20, 10, tzinfo=OSLO)),
            patient=PATIENT,
            ward="Ortopedisk sengepost",
            admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
            municipality_her_id=MUNICIPALITY.her_id,
        ),
        metadata=auth(HOSPITAL),
    )

    # Until discharges has seen the admission, the stay is unknown there, and an unknown stay
    # is refused like anyone else's: wait for its view of the stays.
    known = system.apps["discharges"]
    assert isinstance(known, DischargesApplication)
    wait_for(lambda: known.stays.get(UUID(stay.stay_id)), what="discharges to know the stay")
    discharges.DeclareReadyForDischarge(
        discharges_pb2.DeclareReadyForDischargeRequest(
            metadata=meta("ready", datetime(2023, 12, 30, 9, tzinfo=OSLO)), stay_id=stay.stay_id
        ),
        metadata=auth(HOSPITAL),
    )
    discharges.AnswerReadiness(
        discharges_pb2.AnswerReadinessRequest(
            metadata=meta("answer", datetime(2023, 12, 30, 12, tzinfo=OSLO)),
            stay_id=stay.stay_id,
            can_receive=True,
            receive_on=common_pb2.Date(year=2024, month=1, day=3),
        ),
        metadata=auth(MUNICIPALITY),
    )
    discharges.DischargePatient(
        discharges_pb2.DischargePatientRequest(
            metadata=meta("discharge", datetime(2024, 1, 3, 11, tzinfo=OSLO)),
            stay_id=stay.stay_id,
            destination=discharges_pb2.DISCHARGE_DESTINATION_HOME_WITH_SERVICES,
        ),
        metadata=auth(HOSPITAL),
    )
    pathway = pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server))

    def discharged() -> pathway_pb2.Pathway | None:
        try:
            reply = pathway.GetPathway(
                pathway_pb2.GetPathwayRequest(
                    patient=PATIENT, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
                ),
                metadata=auth(MUNICIPALITY),
            )
        except grpc.RpcError:
            return None
        types = {e.event_type for e in reply.timeline}
        return reply if "PatientDischarged" in types else None

    reply = wait_for(discharged, what="the discharge in the pathway")
    (payment,) = reply.payments
    assert (payment.days, payment.ongoing) == (4, False)
    assert payment.municipality_her_id == MUNICIPALITY.her_id  # where the patient lives
    assert payment.amount_nok == 2 * 5508 + 2 * 5745
    assert reply.location.kind == pathway_pb2.LOCATION_KIND_HOME_WITH_SERVICES
