"""A hospital stay over real gRPC on loopback, on the event store of each backend (SQLite and
PostgreSQL): the clinical flow, then every way a caller can be refused.

The whole system runs (tests/support.py): the access policy reads the care relationships the
pathway projector folds from the registry's events, so the patient is registered first, as the
register adapter does in production: they live in MUNICIPALITY (no fastlege is on record)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

import grpc
import pytest

from carepath.v1 import admissions_pb2, admissions_pb2_grpc, common_pb2
from services.admissions.application import AdmissionsApplication
from shared.access.model import Basis
from shared.actors import Actor
from shared.grpc_server import Server
from shared.ids import DNR_SYSTEM, FNR_SYSTEM
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_HOSPITAL, OTHER_MUNICIPALITY
from tests.support import NOW, Harness, auth, events_in, make_fnr, meta

FNR = make_fnr(3, 11, 38, 410)
PATIENT = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=FNR)
UNKNOWN_ID = "0b7f5b57-1d0e-4f55-a1f3-1f1b8f1f0000"


@dataclass
class Admissions:
    app: AdmissionsApplication
    server: Server
    stub: admissions_pb2_grpc.AdmissionServiceStub

    def stored_events(self) -> int:
        return events_in(self.app)


@pytest.fixture(autouse=True)
def registered(system: Harness) -> None:
    """The patient lives in MUNICIPALITY (the Folkeregister, through the register adapter)."""
    system.register({"system": FNR_SYSTEM, "value": FNR}, municipality=MUNICIPALITY.her_id)


@pytest.fixture
def admissions(system: Harness) -> Admissions:
    server = system.servers["admissions"]
    app = system.apps["admissions"]
    assert isinstance(app, AdmissionsApplication)
    stub = admissions_pb2_grpc.AdmissionServiceStub(system.channel(server))
    return Admissions(app, server, stub)


def admit_request(
    command_id: str = "admit-1", **overrides: Any
) -> admissions_pb2.AdmitPatientRequest:
    request = admissions_pb2.AdmitPatientRequest(
        metadata=meta(command_id, hours=-30),
        patient=PATIENT,
        ward="Medisinsk sengepost 3",
        admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
        municipality_her_id=MUNICIPALITY.her_id,
        municipal_services_likely=True,
        existing_service_user=True,
    )
    for key, value in overrides.items():
        if value is None:
            request.ClearField(key)
        elif hasattr(value, "CopyFrom"):
            getattr(request, key).CopyFrom(value)
        else:
            setattr(request, key, value)
    return request


def admitted(admissions: Admissions, command_id: str = "admit-1") -> admissions_pb2.Stay:
    return admissions.stub.AdmitPatient(admit_request(command_id), metadata=auth(HOSPITAL))


def receipt(
    stay: admissions_pb2.Stay, message_id: str, command_id: str, **apprec: Any
) -> admissions_pb2.RecordMessageReceiptRequest:
    return admissions_pb2.RecordMessageReceiptRequest(
        metadata=meta(command_id, hours=-1),
        stay_id=stay.stay_id,
        message_id=message_id,
        receipt=common_pb2.AppRec(**(apprec or {"status": common_pb2.APP_REC_STATUS_OK})),
    )


def test_an_acute_stay_with_its_messages_and_receipts_is_read_back_by_both_sides(
    admissions: Admissions,
) -> None:
    stub = admissions.stub
    stay = admitted(admissions)
    assert stay.state == admissions_pb2.STAY_STATE_OPEN
    assert stay.health_information_due_at.ToDatetime(tzinfo=UTC) == NOW - timedelta(hours=6)
    stub.RecordAdmissionReport(
        admissions_pb2.RecordAdmissionReportRequest(
            metadata=meta("rep", hours=-29), stay_id=stay.stay_id
        ),
        metadata=auth(MUNICIPALITY),
    )
    stub.SendAdmissionNotice(
        admissions_pb2.SendAdmissionNoticeRequest(
            metadata=meta("not", hours=-28), stay_id=stay.stay_id
        ),
        metadata=auth(HOSPITAL),
    )
    stay = stub.SendHealthInformation(
        admissions_pb2.SendHealthInformationRequest(
            metadata=meta("hi", hours=-20), stay_id=stay.stay_id
        ),
        metadata=auth(HOSPITAL),
    )
    assert [m.type for m in stay.messages] == [
        admissions_pb2.STAY_MESSAGE_TYPE_ADMISSION_REPORT,
        admissions_pb2.STAY_MESSAGE_TYPE_ADMISSION_NOTICE,
        admissions_pb2.STAY_MESSAGE_TYPE_HEALTH_INFORMATION,
    ]
    assert all(m.unanswered and not m.HasField("receipt") for m in stay.messages)
    assert not stay.HasField("health_information_due_at")
    report, notice, _health = stay.messages
    assert (report.from_her_id, report.to_her_id) == (MUNICIPALITY.her_id, HOSPITAL.her_id)
    stub.RecordMessageReceipt(receipt(stay, report.message_id, "r1"), metadata=auth(HOSPITAL))
    stay = stub.RecordMessageReceipt(
        receipt(
            stay,
            notice.message_id,
            "r2",
            status=common_pb2.APP_REC_STATUS_REJECTED,
            errors=[common_pb2.AppRecError(code="E10", description="Ugyldig meldingsformat")],
        ),
        metadata=auth(MUNICIPALITY),
    )
    assert [m.unanswered for m in stay.messages] == [False, False, True]
    assert stay.messages[1].receipt.status == common_pb2.APP_REC_STATUS_REJECTED
    assert stay.messages[1].receipt.errors[0].code == "E10"
    closed = stub.CloseStay(
        admissions_pb2.CloseStayRequest(
            metadata=meta("out"),
            stay_id=stay.stay_id,
            reason=admissions_pb2.STAY_CLOSE_REASON_DISCHARGED,
        ),
        metadata=auth(HOSPITAL),
    )
    assert closed.state == admissions_pb2.STAY_STATE_CLOSED
    assert closed.close_reason == admissions_pb2.STAY_CLOSE_REASON_DISCHARGED
    assert closed.closed_at.ToDatetime(tzinfo=UTC) == NOW
    read = stub.GetStay(
        admissions_pb2.GetStayRequest(stay_id=stay.stay_id), metadata=auth(MUNICIPALITY)
    )
    assert read == closed


def test_list_stays_returns_the_patients_stays_newest_first(admissions: Admissions) -> None:
    older = admissions.stub.AdmitPatient(
        admit_request("old", metadata=meta("old", hours=-(24 * 60))), metadata=auth(HOSPITAL)
    )
    newer = admitted(admissions, "new")
    reply = admissions.stub.ListStays(
        admissions_pb2.ListStaysRequest(patient=PATIENT), metadata=auth(MUNICIPALITY)
    )
    assert [s.stay_id for s in reply.stays] == [newer.stay_id, older.stay_id]


def test_a_hospital_without_a_stay_or_referral_may_not_list_the_patients_stays(
    system: Harness, admissions: Admissions
) -> None:
    """The policy decides for the patient as a whole: no care relationship, no list (not an
    empty one, which would still say the patient is known)."""
    admitted(admissions)
    system.wait_for_relationship(
        {"system": FNR_SYSTEM, "value": FNR}, HOSPITAL.her_id, Basis.STAY_HOSPITAL
    )
    reply = admissions.stub.ListStays(
        admissions_pb2.ListStaysRequest(patient=PATIENT), metadata=auth(HOSPITAL)
    )
    assert len(reply.stays) == 1
    with pytest.raises(grpc.RpcError) as err:
        admissions.stub.ListStays(
            admissions_pb2.ListStaysRequest(patient=PATIENT), metadata=auth(OTHER_HOSPITAL)
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert FNR not in (err.value.details() or "")


def test_concurrent_admissions_of_one_patient_are_all_listed(admissions: Admissions) -> None:
    """Each admission also updates the patient's index; racing admissions retry, none is lost."""

    def admit(i: int) -> str:
        actor = HOSPITAL if i % 2 else OTHER_HOSPITAL
        request = admit_request(f"race-{i}", metadata=meta(f"race-{i}", hours=-i))
        return str(admissions.stub.AdmitPatient(request, metadata=auth(actor)).stay_id)

    with ThreadPoolExecutor(max_workers=8) as pool:
        stay_ids = list(pool.map(admit, range(8)))
    reply = admissions.stub.ListStays(
        admissions_pb2.ListStaysRequest(patient=PATIENT), metadata=auth(MUNICIPALITY)
    )
    assert [s.stay_id for s in reply.stays] == stay_ids  # newest (fewest hours ago) first


def test_a_transfer_hands_the_stay_to_the_other_hospital(admissions: Admissions) -> None:
    stay = admitted(admissions)
    moved = admissions.stub.TransferPatient(
        admissions_pb2.TransferPatientRequest(
            metadata=meta("move", hours=-10),
            stay_id=stay.stay_id,
            to_hospital_her_id=OTHER_HOSPITAL.her_id,
            to_ward="Nevrologisk avdeling",
        ),
        metadata=auth(HOSPITAL),
    )
    assert (moved.hospital_her_id, moved.admitting_hospital_her_id) == (
        OTHER_HOSPITAL.her_id,
        HOSPITAL.her_id,
    )
    assert moved.transfers[0].from_ward == "Medisinsk sengepost 3"
    notice = admissions.stub.SendAdmissionNotice(
        admissions_pb2.SendAdmissionNoticeRequest(
            metadata=meta("n", hours=-9), stay_id=stay.stay_id
        ),
        metadata=auth(OTHER_HOSPITAL),
    )
    assert notice.messages[0].from_her_id == OTHER_HOSPITAL.her_id


def test_a_repeated_command_returns_the_first_result_and_records_nothing(
    admissions: Admissions,
) -> None:
    first = admitted(admissions, "same")
    count = admissions.stored_events()
    again = admissions.stub.AdmitPatient(
        admit_request("same", ward="Kirurgisk"), metadata=auth(HOSPITAL)
    )
    assert again == first
    assert admissions.stored_events() == count


def _admit(**overrides: Any) -> admissions_pb2.AdmitPatientRequest:
    return admit_request("bad", **overrides)


BAD_ADMISSIONS = [
    ("no metadata", _admit(metadata=None), "metadata"),
    (
        "no command id",
        _admit(metadata=common_pb2.CommandMetadata(command_id="")),
        "metadata.command_id",
    ),
    ("time in the future", _admit(metadata=meta("x", hours=2)), "metadata.occurred_at"),
    ("no patient", _admit(patient=None), "patient"),
    (
        "bad check digit",
        _admit(
            patient=common_pb2.PatientIdentifier(
                system=FNR_SYSTEM, value=FNR[:-1] + str((int(FNR[-1]) + 1) % 10)
            )
        ),
        "patient.value",
    ),
    (
        "fnr under the D-number system",
        _admit(patient=common_pb2.PatientIdentifier(system=DNR_SYSTEM, value=FNR)),
        "patient.value",
    ),
    ("no ward", _admit(ward="  "), "ward"),
    ("ward too long", _admit(ward="x" * 201), "ward"),
    ("no admission type", _admit(admission_type=0), "admission_type"),
    ("unknown admission type", _admit(admission_type=9), "admission_type"),
    ("malformed referral id", _admit(referral_id="henvisning-1"), "referral_id"),
    ("no municipality", _admit(municipality_her_id=""), "municipality_her_id"),
    ("letters in municipality", _admit(municipality_her_id="42A1"), "municipality_her_id"),
    (
        "municipality is the hospital",
        _admit(municipality_her_id=HOSPITAL.her_id),
        "municipality_her_id",
    ),
]


@pytest.mark.parametrize(
    ("case", "request_", "field"), BAD_ADMISSIONS, ids=[c[0] for c in BAD_ADMISSIONS]
)
def test_bad_admission_gets_invalid_argument_naming_the_field_and_stores_nothing(
    admissions: Admissions,
    case: str,
    request_: admissions_pb2.AdmitPatientRequest,
    field: str,
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        admissions.stub.AdmitPatient(request_, metadata=auth(HOSPITAL))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(f"{field}:"), err.value.details()
    assert FNR not in err.value.details()
    assert admissions.stored_events() == 0


def _bad_commands(stay_id: str, message_id: str) -> list[tuple[str, str, Any, str]]:
    """(rpc, case, request, field) for the commands on an existing stay."""
    pb = admissions_pb2
    ok = common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK)
    return [
        (
            "SendHealthInformation",
            "no stay id",
            pb.SendHealthInformationRequest(metadata=meta("b1")),
            "stay_id",
        ),
        (
            "SendAdmissionNotice",
            "malformed stay id",
            pb.SendAdmissionNoticeRequest(metadata=meta("b2"), stay_id="stay-1"),
            "stay_id",
        ),
        (
            "RecordMessageReceipt",
            "no message id",
            pb.RecordMessageReceiptRequest(metadata=meta("b3"), stay_id=stay_id, receipt=ok),
            "message_id",
        ),
        (
            "RecordMessageReceipt",
            "no receipt",
            pb.RecordMessageReceiptRequest(
                metadata=meta("b4"), stay_id=stay_id, message_id=message_id
            ),
            "receipt",
        ),
        (
            "RecordMessageReceipt",
            "no receipt status",
            pb.RecordMessageReceiptRequest(
                metadata=meta("b5"),
                stay_id=stay_id,
                message_id=message_id,
                receipt=common_pb2.AppRec(),
            ),
            "receipt.status",
        ),
        (
            "RecordMessageReceipt",
            "rejected without errors",
            pb.RecordMessageReceiptRequest(
                metadata=meta("b6"),
                stay_id=stay_id,
                message_id=message_id,
                receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_REJECTED),
            ),
            "receipt.errors",
        ),
        (
            "TransferPatient",
            "bad hospital",
            pb.TransferPatientRequest(
                metadata=meta("b7"), stay_id=stay_id, to_hospital_her_id="x", to_ward="A"
            ),
            "to_hospital_her_id",
        ),
        (
            "TransferPatient",
            "no ward",
            pb.TransferPatientRequest(
                metadata=meta("b8"), stay_id=stay_id, to_hospital_her_id=OTHER_HOSPITAL.her_id
            ),
            "to_ward",
        ),
        (
            "TransferPatient",
            "same ward",
            pb.TransferPatientRequest(
                metadata=meta("b9"),
                stay_id=stay_id,
                to_hospital_her_id=HOSPITAL.her_id,
                to_ward="Medisinsk sengepost 3",
            ),
            "to_ward",
        ),
        (
            "CloseStay",
            "no reason",
            pb.CloseStayRequest(metadata=meta("b10"), stay_id=stay_id),
            "reason",
        ),
        (
            "CloseStay",
            "before the admission",
            pb.CloseStayRequest(
                metadata=meta("b11", hours=-48),
                stay_id=stay_id,
                reason=pb.STAY_CLOSE_REASON_DISCHARGED,
            ),
            "metadata.occurred_at",
        ),
    ]


def test_bad_commands_on_a_stay_get_invalid_argument_naming_the_field(
    admissions: Admissions,
) -> None:
    stay = admitted(admissions)
    stay = admissions.stub.SendAdmissionNotice(
        admissions_pb2.SendAdmissionNoticeRequest(
            metadata=meta("n", hours=-29), stay_id=stay.stay_id
        ),
        metadata=auth(HOSPITAL),
    )
    message_id = stay.messages[0].message_id
    before = admissions.stored_events()
    for rpc, case, request, field in _bad_commands(stay.stay_id, message_id):
        actor = MUNICIPALITY if rpc == "RecordMessageReceipt" else HOSPITAL
        with pytest.raises(grpc.RpcError) as err:
            getattr(admissions.stub, rpc)(request, metadata=auth(actor))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, case
        assert err.value.details().startswith(f"{field}:"), (case, err.value.details())
    assert admissions.stored_events() == before


def test_commands_on_a_closed_stay_are_failed_precondition_naming_the_state(
    admissions: Admissions,
) -> None:
    stay = admitted(admissions)
    admissions.stub.CloseStay(
        admissions_pb2.CloseStayRequest(
            metadata=meta("out", hours=-2),
            stay_id=stay.stay_id,
            reason=admissions_pb2.STAY_CLOSE_REASON_DISCHARGED,
        ),
        metadata=auth(HOSPITAL),
    )
    before = admissions.stored_events()
    with pytest.raises(grpc.RpcError) as err:
        admissions.stub.SendHealthInformation(
            admissions_pb2.SendHealthInformationRequest(
                metadata=meta("hi", hours=-1), stay_id=stay.stay_id
            ),
            metadata=auth(HOSPITAL),
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "CLOSED" in err.value.details()
    assert admissions.stored_events() == before


def test_a_second_receipt_is_failed_precondition_naming_the_message(
    admissions: Admissions,
) -> None:
    """A second receipt for the health information is refused by the message itself, naming
    it — also once the municipality owes no receipt on the stay any more (it stays the
    message's receiver) — while a retry of the first receipt returns its first result."""
    stay = admitted(admissions)
    admissions.stub.SendAdmissionNotice(
        admissions_pb2.SendAdmissionNoticeRequest(
            metadata=meta("n", hours=-21), stay_id=stay.stay_id
        ),
        metadata=auth(HOSPITAL),
    )
    stay = admissions.stub.SendHealthInformation(
        admissions_pb2.SendHealthInformationRequest(
            metadata=meta("hi", hours=-20), stay_id=stay.stay_id
        ),
        metadata=auth(HOSPITAL),
    )
    notice_id, message_id = (m.message_id for m in stay.messages)
    admissions.stub.RecordMessageReceipt(
        receipt(stay, message_id, "r1"), metadata=auth(MUNICIPALITY)
    )
    before = admissions.stored_events()
    with pytest.raises(grpc.RpcError) as err:
        admissions.stub.RecordMessageReceipt(
            receipt(stay, message_id, "r2"), metadata=auth(MUNICIPALITY)
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert message_id in err.value.details()
    last = admissions.stub.RecordMessageReceipt(
        receipt(stay, notice_id, "r3"), metadata=auth(MUNICIPALITY)
    )
    with pytest.raises(grpc.RpcError) as err:
        admissions.stub.RecordMessageReceipt(
            receipt(stay, message_id, "r4"), metadata=auth(MUNICIPALITY)
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert message_id in err.value.details()
    again = admissions.stub.RecordMessageReceipt(
        receipt(stay, notice_id, "r3"), metadata=auth(MUNICIPALITY)
    )
    assert again == last
    assert admissions.stored_events() == before + 1


@pytest.mark.parametrize(
    ("rpc", "actor"),
    [
        ("SendHealthInformation", OTHER_HOSPITAL),
        ("SendAdmissionNotice", MUNICIPALITY),
        ("RecordAdmissionReport", OTHER_MUNICIPALITY),
        ("RecordAdmissionReport", HOSPITAL),
        ("GetStay", OTHER_HOSPITAL),
        ("GetStay", GP),
    ],
)
def test_organisations_outside_the_stay_get_permission_denied(
    admissions: Admissions, rpc: str, actor: Actor
) -> None:
    stay = admitted(admissions)
    before = admissions.stored_events()
    request_type = getattr(admissions_pb2, f"{rpc}Request")
    request = (
        request_type(stay_id=stay.stay_id)
        if rpc == "GetStay"
        else request_type(metadata=meta("x", hours=-1), stay_id=stay.stay_id)
    )
    with pytest.raises(grpc.RpcError) as err:
        getattr(admissions.stub, rpc)(request, metadata=auth(actor))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert FNR not in err.value.details()
    assert admissions.stored_events() == before


def test_a_receipt_by_the_sender_is_permission_denied(admissions: Admissions) -> None:
    stay = admitted(admissions)
    stay = admissions.stub.SendAdmissionNotice(
        admissions_pb2.SendAdmissionNoticeRequest(
            metadata=meta("n", hours=-29), stay_id=stay.stay_id
        ),
        metadata=auth(HOSPITAL),
    )
    with pytest.raises(grpc.RpcError) as err:
        admissions.stub.RecordMessageReceipt(
            receipt(stay, stay.messages[0].message_id, "r"), metadata=auth(HOSPITAL)
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_an_unknown_stay_is_refused_like_another_patients_and_an_unknown_message_is_not_found(
    admissions: Admissions,
) -> None:
    """Whether a stay exists is itself personal data: an unknown stay id is refused exactly as
    a stay the caller has no part in. A receiver with a receipt due who names a message the
    stay does not have gets NOT_FOUND."""
    stay = admitted(admissions)
    with pytest.raises(grpc.RpcError) as unknown:
        admissions.stub.GetStay(
            admissions_pb2.GetStayRequest(stay_id=UNKNOWN_ID), metadata=auth(HOSPITAL)
        )
    assert unknown.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as not_theirs:
        admissions.stub.GetStay(
            admissions_pb2.GetStayRequest(stay_id=stay.stay_id), metadata=auth(OTHER_HOSPITAL)
        )
    assert not_theirs.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert unknown.value.details() == not_theirs.value.details()
    with pytest.raises(grpc.RpcError) as err:
        admissions.stub.SendAdmissionNotice(
            admissions_pb2.SendAdmissionNoticeRequest(metadata=meta("n"), stay_id=UNKNOWN_ID),
            metadata=auth(HOSPITAL),
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    stay = admissions.stub.SendAdmissionNotice(
        admissions_pb2.SendAdmissionNoticeRequest(
            metadata=meta("n", hours=-1), stay_id=stay.stay_id
        ),
        metadata=auth(HOSPITAL),
    )
    with pytest.raises(grpc.RpcError) as err:
        admissions.stub.RecordMessageReceipt(
            receipt(stay, UNKNOWN_ID, "r"), metadata=auth(MUNICIPALITY)
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_municipality_named_in_an_admission_gets_no_access_by_that_alone(
    admissions: Admissions,
) -> None:
    """The admission names OTHER_MUNICIPALITY, where the patient neither lives nor stays: an
    event's field never makes a care relationship. The municipality the patient lives in
    reads the stay."""
    stay = admissions.stub.AdmitPatient(
        admit_request("named", municipality_her_id=OTHER_MUNICIPALITY.her_id),
        metadata=auth(HOSPITAL),
    )
    for rpc, request in (
        ("GetStay", admissions_pb2.GetStayRequest(stay_id=stay.stay_id)),
        ("ListStays", admissions_pb2.ListStaysRequest(patient=PATIENT)),
        (
            "RecordAdmissionReport",
            admissions_pb2.RecordAdmissionReportRequest(
                metadata=meta("rep", hours=-1), stay_id=stay.stay_id
            ),
        ),
    ):
        with pytest.raises(grpc.RpcError) as err:
            getattr(admissions.stub, rpc)(request, metadata=auth(OTHER_MUNICIPALITY))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, rpc
    read = admissions.stub.GetStay(
        admissions_pb2.GetStayRequest(stay_id=stay.stay_id), metadata=auth(MUNICIPALITY)
    )
    assert read.municipality_her_id == OTHER_MUNICIPALITY.her_id


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer not-a-jwt"),), (("authorization", "Basic abc"),)],
    ids=["no token", "garbage token", "not bearer"],
)
def test_calls_without_a_valid_token_are_unauthenticated(
    admissions: Admissions, metadata: Any
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        admissions.stub.AdmitPatient(admit_request(), metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        admissions.stub.ListStays(
            admissions_pb2.ListStaysRequest(patient=PATIENT), metadata=metadata
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert admissions.stored_events() == 0


def test_health_is_served_without_a_token(admissions: Admissions) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{admissions.server.port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="carepath.v1.AdmissionService")
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
