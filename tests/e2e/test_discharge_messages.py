"""The discharge's messages to the municipality with their receipts, and the fastlege's
medication reconciliation after the discharge — through admissions, discharges (and its view
of stays, kept by its nameko reaction), medications and the pathway, on real parts. The patient
lives in MUNICIPALITY and has GP as fastlege (registered as the register adapter does)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, timedelta
from uuid import UUID

import grpc
import pytest

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    discharges_pb2,
    discharges_pb2_grpc,
    medications_pb2,
    medications_pb2_grpc,
    pathway_pb2,
    pathway_pb2_grpc,
)
from services.discharges.application import DischargesApplication
from shared.actors import Actor
from shared.broker import Tenant
from shared.ids import FNR_SYSTEM
from shared.times import OSLO
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_MUNICIPALITY
from tests.processes import nameko
from tests.support import (
    NOW,
    Harness,
    auth,
    drain_queue,
    make_fnr,
    meta,
    projector_queue,
    running_system,
    wait_for,
)

PATIENT = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(17, 8, 44, 220))
OK = common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK)
D = discharges_pb2


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
        {"system": PATIENT.system, "value": PATIENT.value}, municipality=MUNICIPALITY.her_id, gp=GP
    )


def admitted(system: Harness) -> str:
    admissions = admissions_pb2_grpc.AdmissionServiceStub(
        system.channel(system.servers["admissions"])
    )
    stay = admissions.AdmitPatient(
        admissions_pb2.AdmitPatientRequest(
            metadata=meta("admit", days=-5),
            patient=PATIENT,
            ward="Medisinsk sengepost",
            admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
            municipality_her_id=MUNICIPALITY.her_id,
        ),
        metadata=auth(HOSPITAL),
    )
    known = system.apps["discharges"]
    assert isinstance(known, DischargesApplication)
    wait_for(lambda: known.stays.get(UUID(stay.stay_id)), what="discharges to know the stay")
    return str(stay.stay_id)


def message_of(reply: D.Discharge, kind: int) -> D.DischargeMessage:
    (message,) = [m for m in reply.messages if m.type == kind]
    return message


def receipt(
    discharges: discharges_pb2_grpc.DischargeServiceStub,
    stay_id: str,
    message: D.DischargeMessage,
    by: Actor,
) -> D.Discharge:
    reply: D.Discharge = discharges.RecordMessageReceipt(
        D.RecordDischargeMessageReceiptRequest(
            metadata=meta(f"receipt-{message.message_id}"),
            stay_id=stay_id,
            message_id=message.message_id,
            receipt=OK,
        ),
        metadata=auth(by),
    )
    return reply


def pathway_where(
    system: Harness, holds: Callable[[pathway_pb2.Pathway], bool]
) -> Callable[[], pathway_pb2.Pathway | None]:
    stub = pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server))

    def check() -> pathway_pb2.Pathway | None:
        try:
            reply = stub.GetPathway(
                pathway_pb2.GetPathwayRequest(
                    patient=PATIENT, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
                ),
                metadata=auth(MUNICIPALITY),
            )
        except grpc.RpcError:
            return None
        return reply if holds(reply) else None

    return check


def receipts(reply: pathway_pb2.Pathway) -> dict[str, int]:
    return {m.name: m.receipt for m in reply.messages}


def test_the_avmelding_and_melding_om_utskrevet_pasient_get_the_municipalitys_receipts(
    system: Harness,
) -> None:
    """Declared ready, then withdrawn (Avmelding) as the patient got a fever; ready again and
    discharged home with home nursing (Melding om utskrevet pasient). The municipality answers
    each message with an AppRec; another municipality may not."""
    stay_id = admitted(system)
    discharges = discharges_pb2_grpc.DischargeServiceStub(
        system.channel(system.servers["discharges"])
    )
    discharges.DeclareReadyForDischarge(
        D.DeclareReadyForDischargeRequest(metadata=meta("ready", days=-3), stay_id=stay_id),
        metadata=auth(HOSPITAL),
    )
    withdrawn = discharges.WithdrawReadiness(
        D.WithdrawReadinessRequest(
            metadata=meta("avmelding", days=-2), stay_id=stay_id, reason="Feber"
        ),
        metadata=auth(HOSPITAL),
    )
    avmelding = message_of(withdrawn, D.DISCHARGE_MESSAGE_TYPE_WITHDRAWAL_NOTICE)
    assert (avmelding.to_her_id, avmelding.unanswered) == (MUNICIPALITY.her_id, True)
    with pytest.raises(grpc.RpcError) as refused:
        receipt(discharges, stay_id, avmelding, OTHER_MUNICIPALITY)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    answered = receipt(discharges, stay_id, avmelding, MUNICIPALITY)
    assert not message_of(answered, D.DISCHARGE_MESSAGE_TYPE_WITHDRAWAL_NOTICE).unanswered

    discharges.DeclareReadyForDischarge(
        D.DeclareReadyForDischargeRequest(metadata=meta("ready-2", days=-1), stay_id=stay_id),
        metadata=auth(HOSPITAL),
    )
    out = discharges.DischargePatient(
        D.DischargePatientRequest(
            metadata=meta("out", hours=-3),
            stay_id=stay_id,
            destination=D.DISCHARGE_DESTINATION_HOME_WITH_SERVICES,
        ),
        metadata=auth(HOSPITAL),
    )
    notice = message_of(out, D.DISCHARGE_MESSAGE_TYPE_DISCHARGE_NOTICE)
    assert notice.to_her_id == MUNICIPALITY.her_id

    waiting = wait_for(
        pathway_where(system, lambda r: "Melding om utskrevet pasient" in receipts(r)),
        what="the discharge notice in the pathway",
    )
    assert receipts(waiting)["Avmelding av utskrivningsklar pasient"] == (
        common_pb2.APP_REC_STATUS_OK
    )
    unanswered = [t for t in waiting.tasks if t.kind == pathway_pb2.TASK_KIND_MESSAGE_RECEIPT]
    assert MUNICIPALITY.her_id in {t.waiting_on.her_id for t in unanswered}

    receipt(discharges, stay_id, notice, MUNICIPALITY)
    seen = wait_for(
        pathway_where(
            system,
            lambda r: receipts(r)["Melding om utskrevet pasient"] == common_pb2.APP_REC_STATUS_OK,
        ),
        what="the notice's receipt in the pathway",
    )
    assert not [t for t in seen.tasks if notice.message_id in t.task_id]


def test_after_the_discharge_the_fastlege_reconciles_the_medication_list(
    system: Harness,
) -> None:
    """Discharged 3 hours ago: the fastlege owes a reconciliation of the list (due 7 days after
    the discharge day); the GP's reconciliation closes the task."""
    stay_id = admitted(system)
    discharges = discharges_pb2_grpc.DischargeServiceStub(
        system.channel(system.servers["discharges"])
    )
    discharges.DischargePatient(
        D.DischargePatientRequest(
            metadata=meta("out", hours=-3),
            stay_id=stay_id,
            destination=D.DISCHARGE_DESTINATION_HOME,
        ),
        metadata=auth(HOSPITAL),
    )

    def reconciliation(reply: pathway_pb2.Pathway) -> list[pathway_pb2.OpenTask]:
        return [t for t in reply.tasks if t.kind == pathway_pb2.TASK_KIND_MEDICATION_RECONCILIATION]

    reply = wait_for(pathway_where(system, lambda r: bool(reconciliation(r))), what="the task")
    (task,) = reconciliation(reply)
    assert (task.waiting_on.her_id, task.waiting_on.kind) == (
        GP.her_id,
        common_pb2.ORGANISATION_KIND_GP,
    )
    discharged_day = (NOW - timedelta(hours=3)).astimezone(OSLO).date()
    due = task.due.ToDatetime(tzinfo=UTC).astimezone(OSLO)
    assert (due.date() - discharged_day).days == 7 and not task.breached

    medications = medications_pb2_grpc.MedicationServiceStub(
        system.channel(system.servers["medications"])
    )
    medications.ReconcileMedicationList(
        medications_pb2.ReconcileMedicationListRequest(
            metadata=meta("reconcile", hours=-1),
            patient=PATIENT,
            sources=[
                medications_pb2.RECONCILIATION_SOURCE_PATIENT,
                medications_pb2.RECONCILIATION_SOURCE_HOSPITAL_RECORD,
            ],
            note="Gjennomgått med pasienten etter utskrivning",
        ),
        metadata=auth(GP),
    )
    wait_for(
        pathway_where(
            system,
            lambda r: bool(r.medications.HasField("last_reconciliation")) and not reconciliation(r),
        ),
        what="the reconciliation to close the task",
    )
