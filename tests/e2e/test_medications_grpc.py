"""The shared medication list over real gRPC on loopback, on the real event stores (SQLite and
PostgreSQL): the doctors' commands, the list as of a past moment, and every kind of refusal.

The whole system runs (tests/support.py): the access policy reads the care relationships the
pathway projector folds from the registry's and the other services' events. The patient lives
in MUNICIPALITY with GP as fastlege (registered as the register adapter does); the hospital's
doctors change the list while the patient is admitted there."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    medications_pb2,
    medications_pb2_grpc,
)
from services.medications.application import MedicationsApplication
from shared.access.model import Basis
from shared.grpc_server import Server
from shared.ids import FNR_SYSTEM
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_HOSPITAL
from tests.support import NOW, Harness, auth, events_in, make_fnr, meta

FNR = make_fnr(12, 3, 42, 480)
PATIENT = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=FNR)
OTHER_PATIENT = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(1, 2, 53, 300))
METFORMIN = medications_pb2.Medication(atc_code="A10BA02", name="Metformin")
WARFARIN = medications_pb2.Medication(atc_code="B01AA03", name="Warfarin")

ACTIVE = medications_pb2.MEDICATION_STATE_ACTIVE
PAUSED = medications_pb2.MEDICATION_STATE_PAUSED
DISCONTINUED = medications_pb2.MEDICATION_STATE_DISCONTINUED


def ts(days_ago: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(NOW - timedelta(days=days_ago))
    return stamp


def registered_as(patient: common_pb2.PatientIdentifier) -> dict[str, str]:
    return {"system": patient.system, "value": patient.value}


@pytest.fixture(autouse=True)
def registered(system: Harness) -> None:
    """Both patients have GP as fastlege; the first lives in MUNICIPALITY."""
    system.register(registered_as(PATIENT), municipality=MUNICIPALITY.her_id, gp=GP)
    system.register(registered_as(OTHER_PATIENT), gp=GP)


@pytest.fixture
def in_hospital(system: Harness) -> admissions_pb2.Stay:
    """The patient is admitted to HOSPITAL (three weeks ago): its doctors care for them now."""
    admissions = admissions_pb2_grpc.AdmissionServiceStub(
        system.channel(system.servers["admissions"])
    )
    stay = admissions.AdmitPatient(
        admissions_pb2.AdmitPatientRequest(
            metadata=meta("admit", days=-21),
            patient=PATIENT,
            ward="Medisinsk sengepost 3",
            admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
            municipality_her_id=MUNICIPALITY.her_id,
        ),
        metadata=auth(HOSPITAL),
    )
    system.wait_for_relationship(registered_as(PATIENT), HOSPITAL.her_id, Basis.STAY_HOSPITAL)
    return stay


@pytest.fixture
def service(system: Harness) -> tuple[MedicationsApplication, Server]:
    app = system.apps["medications"]
    assert isinstance(app, MedicationsApplication)
    return app, system.servers["medications"]


@pytest.fixture
def medications(system: Harness) -> medications_pb2_grpc.MedicationServiceStub:
    return medications_pb2_grpc.MedicationServiceStub(system.channel(system.servers["medications"]))


def stored_events(service: tuple[MedicationsApplication, Server]) -> int:
    return events_in(service[0])


def prescribe_request(
    command_id: str = "rx-1", **overrides: Any
) -> medications_pb2.PrescribeMedicationRequest:
    request = medications_pb2.PrescribeMedicationRequest(
        metadata=meta(command_id, days=-30),
        patient=PATIENT,
        medication=METFORMIN,
        dose="500 mg x 2",
        reason="Diabetes type 2",
    )
    for key, value in overrides.items():
        if value is None:
            request.ClearField(key)  # type: ignore[arg-type]
        elif hasattr(value, "CopyFrom"):
            getattr(request, key).CopyFrom(value)
        else:
            setattr(request, key, value)
    return request


def prescribe(
    medications: medications_pb2_grpc.MedicationServiceStub, **overrides: Any
) -> tuple[medications_pb2.MedicationList, str]:
    reply = medications.PrescribeMedication(prescribe_request(**overrides), metadata=auth(GP))
    return reply, reply.entries[-1].entry_id


def entry(reply: medications_pb2.MedicationList, entry_id: str) -> medications_pb2.MedicationEntry:
    (found,) = [e for e in reply.entries if e.entry_id == entry_id]
    return found


@pytest.mark.usefixtures("in_hospital")
def test_a_prescription_is_paused_resumed_and_discontinued_over_grpc(
    medications: medications_pb2_grpc.MedicationServiceStub,
) -> None:
    reply, metformin = prescribe(medications)
    e = entry(reply, metformin)
    assert (e.state, e.dose, e.medication.atc_code) == (ACTIVE, "500 mg x 2", "A10BA02")
    assert e.source == common_pb2.Organisation(
        her_id=GP.her_id, kind=common_pb2.ORGANISATION_KIND_GP
    )
    assert e.prescribed_by.person.hpr_number == GP.hpr
    assert e.prescribed_at == ts(30)

    reply = medications.PauseMedication(
        medications_pb2.PauseMedicationRequest(
            metadata=meta("pause", days=-20), patient=PATIENT, entry_id=metformin, reason="Kontrast"
        ),
        metadata=auth(HOSPITAL),
    )
    e = entry(reply, metformin)
    assert (e.state, e.state_reason, e.last_changed_by.organisation.her_id) == (
        PAUSED,
        "Kontrast",
        HOSPITAL.her_id,
    )
    reply = medications.ResumeMedication(
        medications_pb2.ResumeMedicationRequest(
            metadata=meta("resume", days=-18), patient=PATIENT, entry_id=metformin
        ),
        metadata=auth(HOSPITAL),
    )
    assert entry(reply, metformin).state == ACTIVE
    reply = medications.DiscontinueMedication(
        medications_pb2.DiscontinueMedicationRequest(
            metadata=meta("stop", days=-1), patient=PATIENT, entry_id=metformin, reason="Nyresvikt"
        ),
        metadata=auth(GP),
    )
    e = entry(reply, metformin)
    assert (e.state, e.state_reason, e.last_changed_at) == (DISCONTINUED, "Nyresvikt", ts(1))
    assert reply.version == 5


def test_the_list_on_discharge_day_differs_from_the_list_now(
    medications: medications_pb2_grpc.MedicationServiceStub,
) -> None:
    _, metformin = prescribe(medications)
    medications.ChangeDose(
        medications_pb2.ChangeDoseRequest(
            metadata=meta("gp-dose", days=-2),
            patient=PATIENT,
            entry_id=metformin,
            dose="1000 mg x 2",
        ),
        metadata=auth(GP),
    )
    discharge_day = ts(10)
    then = medications.GetMedicationList(
        medications_pb2.GetMedicationListRequest(patient=PATIENT, as_of=discharge_day),
        metadata=auth(MUNICIPALITY),
    )
    now = medications.GetMedicationList(
        medications_pb2.GetMedicationListRequest(patient=PATIENT), metadata=auth(MUNICIPALITY)
    )
    assert (entry(then, metformin).dose, then.as_of) == ("500 mg x 2", discharge_day)
    assert entry(now, metformin).dose == "1000 mg x 2" and not now.HasField("as_of")


@pytest.mark.usefixtures("in_hospital")
def test_a_late_reported_pause_lands_at_its_clinical_time(
    medications: medications_pb2_grpc.MedicationServiceStub,
) -> None:
    _, warfarin = prescribe(medications, medication=WARFARIN, dose="5 mg x 1")
    medications.PauseMedication(
        medications_pb2.PauseMedicationRequest(
            metadata=meta("late-pause", days=-20),
            patient=PATIENT,
            entry_id=warfarin,
            reason="Operasjon",
        ),
        metadata=auth(HOSPITAL),
    )

    def state_at(days_ago: float) -> int:
        reply = medications.GetMedicationList(
            medications_pb2.GetMedicationListRequest(patient=PATIENT, as_of=ts(days_ago)),
            metadata=auth(GP),
        )
        return entry(reply, warfarin).state

    assert (state_at(25), state_at(15)) == (ACTIVE, PAUSED)


@pytest.mark.usefixtures("in_hospital")
def test_a_reconciliation_is_recorded_with_its_sources(
    medications: medications_pb2_grpc.MedicationServiceStub,
) -> None:
    prescribe(medications)
    reply = medications.ReconcileMedicationList(
        medications_pb2.ReconcileMedicationListRequest(
            metadata=meta("rec", days=-3),
            patient=PATIENT,
            sources=[
                medications_pb2.RECONCILIATION_SOURCE_PATIENT,
                medications_pb2.RECONCILIATION_SOURCE_MULTIDOSE_PHARMACY,
            ],
            note="Samstemt ved innleggelse",
        ),
        metadata=auth(HOSPITAL),
    )
    rec = reply.last_reconciliation
    assert list(rec.sources) == [
        medications_pb2.RECONCILIATION_SOURCE_PATIENT,
        medications_pb2.RECONCILIATION_SOURCE_MULTIDOSE_PHARMACY,
    ]
    assert (rec.reconciled_at, rec.reconciled_by.organisation.her_id, rec.note) == (
        ts(3),
        HOSPITAL.her_id,
        "Samstemt ved innleggelse",
    )


def test_a_repeated_command_returns_the_first_result_and_records_nothing(
    service: tuple[MedicationsApplication, Server],
    medications: medications_pb2_grpc.MedicationServiceStub,
) -> None:
    first, _ = prescribe(medications, command_id="same")
    count = stored_events(service)
    again, _ = prescribe(medications, command_id="same", dose="850 mg x 3")
    assert again == first
    assert stored_events(service) == count


def _bad_prescription(field: str, value: Any) -> medications_pb2.PrescribeMedicationRequest:
    return prescribe_request(**{field: value})


ENTRY = "0b7f5b57-1d0e-4f55-a1f3-1f1b8f1f0000"
BAD_REQUESTS: list[tuple[str, str, Any, str]] = [
    ("no metadata", "PrescribeMedication", _bad_prescription("metadata", None), "metadata"),
    (
        "no command id",
        "PrescribeMedication",
        _bad_prescription("metadata", common_pb2.CommandMetadata(occurred_at=ts(1))),
        "metadata.command_id",
    ),
    (
        "time in the future",
        "PrescribeMedication",
        _bad_prescription("metadata", meta("x", days=1)),
        "metadata.occurred_at",
    ),
    ("no patient", "PrescribeMedication", _bad_prescription("patient", None), "patient"),
    (
        "bad check digit",
        "PrescribeMedication",
        _bad_prescription(
            "patient",
            common_pb2.PatientIdentifier(
                system=FNR_SYSTEM, value=FNR[:-1] + str((int(FNR[-1]) + 1) % 10)
            ),
        ),
        "patient.value",
    ),
    ("no medication", "PrescribeMedication", _bad_prescription("medication", None), "medication"),
    (
        "not an ATC code",
        "PrescribeMedication",
        _bad_prescription("medication", medications_pb2.Medication(atc_code="A10", name="x")),
        "medication.atc_code",
    ),
    (
        "no medication name",
        "PrescribeMedication",
        _bad_prescription("medication", medications_pb2.Medication(atc_code="A10BA02")),
        "medication.name",
    ),
    ("no dose", "PrescribeMedication", _bad_prescription("dose", "  "), "dose"),
    ("dose too long", "PrescribeMedication", _bad_prescription("dose", "x" * 501), "dose"),
    (
        "no entry id",
        "PauseMedication",
        medications_pb2.PauseMedicationRequest(metadata=meta("p"), patient=PATIENT, reason="x"),
        "entry_id",
    ),
    (
        "malformed entry id",
        "ResumeMedication",
        medications_pb2.ResumeMedicationRequest(
            metadata=meta("r"), patient=PATIENT, entry_id="nope"
        ),
        "entry_id",
    ),
    (
        "no reason for discontinuing",
        "DiscontinueMedication",
        medications_pb2.DiscontinueMedicationRequest(
            metadata=meta("s"), patient=PATIENT, entry_id=ENTRY
        ),
        "reason",
    ),
    (
        "no new dose",
        "ChangeDose",
        medications_pb2.ChangeDoseRequest(metadata=meta("d"), patient=PATIENT, entry_id=ENTRY),
        "dose",
    ),
    (
        "no sources",
        "ReconcileMedicationList",
        medications_pb2.ReconcileMedicationListRequest(metadata=meta("rec"), patient=PATIENT),
        "sources",
    ),
    (
        "unknown source",
        "ReconcileMedicationList",
        medications_pb2.ReconcileMedicationListRequest(
            metadata=meta("rec"),
            patient=PATIENT,
            sources=[medications_pb2.ReconciliationSource.ValueType(42)],
        ),
        "sources[0]",
    ),
]


@pytest.mark.parametrize(
    ("case", "rpc", "request_", "field"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_input_gets_invalid_argument_naming_the_field_and_changes_nothing(
    service: tuple[MedicationsApplication, Server],
    medications: medications_pb2_grpc.MedicationServiceStub,
    case: str,
    rpc: str,
    request_: Any,
    field: str,
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        getattr(medications, rpc)(request_, metadata=auth(GP))
    details = err.value.details() or ""
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"{field}:"), details
    assert FNR not in details
    assert stored_events(service) == 0


def test_resuming_an_active_medication_is_failed_precondition_naming_the_state(
    service: tuple[MedicationsApplication, Server],
    medications: medications_pb2_grpc.MedicationServiceStub,
) -> None:
    _, metformin = prescribe(medications)
    before = stored_events(service)
    with pytest.raises(grpc.RpcError) as err:
        medications.ResumeMedication(
            medications_pb2.ResumeMedicationRequest(
                metadata=meta("r"), patient=PATIENT, entry_id=metformin
            ),
            metadata=auth(GP),
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "ACTIVE" in (err.value.details() or "")
    assert stored_events(service) == before


def test_an_unknown_entry_or_a_patient_without_a_list_is_not_found(
    medications: medications_pb2_grpc.MedicationServiceStub,
) -> None:
    """NOT_FOUND is for a caller who cares for the patient (GP is both patients' fastlege)."""
    prescribe(medications)
    with pytest.raises(grpc.RpcError) as err:
        medications.PauseMedication(
            medications_pb2.PauseMedicationRequest(
                metadata=meta("p"), patient=PATIENT, entry_id=ENTRY, reason="x"
            ),
            metadata=auth(GP),
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        medications.GetMedicationList(
            medications_pb2.GetMedicationListRequest(patient=OTHER_PATIENT), metadata=auth(GP)
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND  # their fastlege: no list yet


def test_a_hospital_without_a_stay_or_referral_may_neither_read_nor_change_the_list(
    service: tuple[MedicationsApplication, Server],
    medications: medications_pb2_grpc.MedicationServiceStub,
) -> None:
    """Only organisations caring for the patient now: OTHER_HOSPITAL has no stay or referral.
    The refusal is the same for a patient with a list and one without."""
    _, metformin = prescribe(medications)
    before = stored_events(service)
    with pytest.raises(grpc.RpcError) as err:
        medications.PauseMedication(
            medications_pb2.PauseMedicationRequest(
                metadata=meta("p"), patient=PATIENT, entry_id=metformin, reason="Kontrast"
            ),
            metadata=auth(OTHER_HOSPITAL),
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    refusals = []
    for patient in (PATIENT, OTHER_PATIENT):
        with pytest.raises(grpc.RpcError) as err:
            medications.GetMedicationList(
                medications_pb2.GetMedicationListRequest(patient=patient),
                metadata=auth(OTHER_HOSPITAL),
            )
        refusals.append((err.value.code(), err.value.details()))
    assert refusals[0] == refusals[1]
    assert refusals[0][0] == grpc.StatusCode.PERMISSION_DENIED
    assert FNR not in (refusals[0][1] or "")
    assert stored_events(service) == before


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer not-a-jwt"),), (("authorization", "Basic abc"),)],
    ids=["no token", "garbage token", "not bearer"],
)
def test_calls_without_a_valid_token_are_unauthenticated(
    service: tuple[MedicationsApplication, Server],
    medications: medications_pb2_grpc.MedicationServiceStub,
    metadata: Any,
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        medications.PrescribeMedication(prescribe_request(), metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        medications.GetMedicationList(
            medications_pb2.GetMedicationListRequest(patient=PATIENT), metadata=metadata
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert stored_events(service) == 0


def test_health_is_served_without_a_token(
    service: tuple[MedicationsApplication, Server],
) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{service[1].port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="carepath.v1.MedicationService")
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
