"""The end of a hospital stay over real gRPC on loopback, on the event store of each backend
(SQLite and PostgreSQL): the clinical flow, then every way a caller can be refused.

The whole system runs (tests/support.py): the access policy reads the care relationships the
pathway projector folds from the registry's events, so the patient is registered first, as the
register adapter does in production: they live in MUNICIPALITY. The known-stays view is filled
directly here, as the admissions events would fill it (the real path through the broker is
tested in tests/integration/test_reactions.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    discharges_pb2,
    discharges_pb2_grpc,
)
from services.discharges.application import DischargesApplication
from shared.access.model import Basis
from shared.actors import Actor
from shared.grpc_server import Server
from shared.ids import FNR_SYSTEM
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_HOSPITAL, OTHER_MUNICIPALITY
from tests.support import NOW, Harness, auth, events_in, make_fnr, meta

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(3, 11, 38, 410)}
NURSING_HOME = "812345"
STAY = str(uuid.UUID("6a1f0c2e-5b1d-4c36-9d59-7f7a3c9e0001"))
UNKNOWN_ID = "0b7f5b57-1d0e-4f55-a1f3-1f1b8f1f0000"


@dataclass
class Discharges:
    app: DischargesApplication
    server: Server
    stub: discharges_pb2_grpc.DischargeServiceStub

    def stored_events(self) -> int:
        return events_in(self.app)


@pytest.fixture(autouse=True)
def registered(system: Harness) -> None:
    """The patient lives in MUNICIPALITY (the Folkeregister, through the register adapter)."""
    system.register(PATIENT, municipality=MUNICIPALITY.her_id)


@pytest.fixture
def discharges(system: Harness) -> Discharges:
    app = system.apps["discharges"]
    assert isinstance(app, DischargesApplication)
    app.stays.admitted(STAY, PATIENT, HOSPITAL.her_id, MUNICIPALITY.her_id)
    server = system.servers["discharges"]
    return Discharges(app, server, discharges_pb2_grpc.DischargeServiceStub(system.channel(server)))


def ready(d: Discharges, command_id: str = "ready") -> discharges_pb2.Discharge:
    return d.stub.DeclareReadyForDischarge(
        discharges_pb2.DeclareReadyForDischargeRequest(
            metadata=meta(command_id, hours=-48), stay_id=STAY
        ),
        metadata=auth(HOSPITAL),
    )


def discharged(d: Discharges) -> discharges_pb2.Discharge:
    return d.stub.DischargePatient(
        discharges_pb2.DischargePatientRequest(
            metadata=meta("out", hours=-2),
            stay_id=STAY,
            destination=discharges_pb2.DISCHARGE_DESTINATION_SHORT_TERM_NURSING_HOME,
            destination_her_id=NURSING_HOME,
        ),
        metadata=auth(HOSPITAL),
    )


def epicrisis(d: Discharges, to: str, command_id: str) -> discharges_pb2.Discharge:
    return d.stub.SendEpicrisis(
        discharges_pb2.SendEpicrisisRequest(
            metadata=meta(command_id, hours=-1), stay_id=STAY, to_her_id=to
        ),
        metadata=auth(HOSPITAL),
    )


def test_ready_answered_discharged_with_report_and_epicrisis_read_back_by_the_municipality(
    discharges: Discharges,
) -> None:
    ready(discharges)
    receive_on = (NOW - timedelta(hours=24)).date()
    discharges.stub.AnswerReadiness(
        discharges_pb2.AnswerReadinessRequest(
            metadata=meta("answer", hours=-40),
            stay_id=STAY,
            can_receive=True,
            receive_on=common_pb2.Date(
                year=receive_on.year, month=receive_on.month, day=receive_on.day
            ),
        ),
        metadata=auth(MUNICIPALITY),
    )
    discharged(discharges)
    gp = epicrisis(discharges, GP.her_id, "epi-gp")
    message = next(m for m in gp.messages if m.to_her_id == GP.her_id)
    discharges.stub.RecordMessageReceipt(
        discharges_pb2.RecordDischargeMessageReceiptRequest(
            metadata=meta("r"),
            stay_id=STAY,
            message_id=message.message_id,
            receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK),
        ),
        metadata=auth(GP),
    )
    seen = discharges.stub.GetDischarge(
        discharges_pb2.GetDischargeRequest(stay_id=STAY), metadata=auth(MUNICIPALITY)
    )
    assert seen.state == discharges_pb2.DISCHARGE_STATE_DISCHARGED
    assert seen.destination == discharges_pb2.DISCHARGE_DESTINATION_SHORT_TERM_NURSING_HOME
    assert seen.readiness_periods[0].answer.receive_on.day == receive_on.day
    assert [(m.type, m.unanswered) for m in seen.messages] == [
        (discharges_pb2.DISCHARGE_MESSAGE_TYPE_READINESS_NOTICE, True),
        (discharges_pb2.DISCHARGE_MESSAGE_TYPE_DISCHARGE_REPORT, True),
        (discharges_pb2.DISCHARGE_MESSAGE_TYPE_DISCHARGE_NOTICE, True),
        (discharges_pb2.DISCHARGE_MESSAGE_TYPE_EPICRISIS, False),
    ]


def test_a_repeated_command_returns_the_first_result_and_records_nothing(
    discharges: Discharges,
) -> None:
    first = ready(discharges)
    before = discharges.stored_events()
    assert ready(discharges) == first
    assert discharges.stored_events() == before


BAD_COMMANDS: list[tuple[str, str, dict[str, Any], str]] = [
    ("DeclareReadyForDischarge", "DeclareReadyForDischargeRequest", {"stay_id": STAY}, "metadata"),
    ("DeclareReadyForDischarge", "DeclareReadyForDischargeRequest", {"stay_id": "x"}, "stay_id"),
    ("AnswerReadiness", "AnswerReadinessRequest", {"stay_id": ""}, "stay_id"),
    ("AnswerReadiness", "AnswerReadinessRequest", {"receive_on": (2026, 2, 30)}, "receive_on"),
    ("AnswerReadiness", "AnswerReadinessRequest", {"can_receive": True}, "receive_on"),
    ("WithdrawReadiness", "WithdrawReadinessRequest", {"reason": " "}, "reason"),
    ("DischargePatient", "DischargePatientRequest", {}, "destination"),
    ("DischargePatient", "DischargePatientRequest", {"destination": 3}, "destination_her_id"),
    (
        "DischargePatient",
        "DischargePatientRequest",
        {"destination": 1, "destination_her_id": "abc"},
        "destination_her_id",
    ),
    ("SendEpicrisis", "SendEpicrisisRequest", {"to_her_id": ""}, "to_her_id"),
    ("RecordMessageReceipt", "RecordDischargeMessageReceiptRequest", {}, "message_id"),
    (
        "RecordMessageReceipt",
        "RecordDischargeMessageReceiptRequest",
        {"message_id": UNKNOWN_ID},
        "receipt",
    ),
]


@pytest.mark.parametrize(("rpc", "message", "fields", "field"), BAD_COMMANDS)
def test_bad_input_is_invalid_argument_naming_the_field_and_stores_nothing(
    discharges: Discharges, rpc: str, message: str, fields: dict[str, Any], field: str
) -> None:
    if rpc in ("AnswerReadiness", "WithdrawReadiness", "RecordMessageReceipt"):
        ready(discharges)  # the readiness notice: the municipality owes its receipt
    before = discharges.stored_events()
    request = getattr(discharges_pb2, message)(metadata=meta("bad"), stay_id=STAY)
    for key, value in fields.items():
        if key == "receive_on":
            request.receive_on.CopyFrom(
                common_pb2.Date(year=value[0], month=value[1], day=value[2])
            )
        else:
            setattr(request, key, value)
    if field == "metadata":
        request.ClearField("metadata")
    actor = MUNICIPALITY if rpc in ("AnswerReadiness", "RecordMessageReceipt") else HOSPITAL
    with pytest.raises(grpc.RpcError) as err:
        getattr(discharges.stub, rpc)(request, metadata=auth(actor))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith(field)
    assert discharges.stored_events() == before


def test_readiness_for_an_unknown_stay_is_refused_like_another_hospitals_stay(
    discharges: Discharges,
) -> None:
    """Whether a stay exists is itself personal data: a stay discharges does not know is
    refused exactly as a stay of another hospital."""
    with pytest.raises(grpc.RpcError) as unknown:
        discharges.stub.DeclareReadyForDischarge(
            discharges_pb2.DeclareReadyForDischargeRequest(metadata=meta("r"), stay_id=UNKNOWN_ID),
            metadata=auth(HOSPITAL),
        )
    assert unknown.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as not_theirs:
        discharges.stub.DeclareReadyForDischarge(
            discharges_pb2.DeclareReadyForDischargeRequest(metadata=meta("r"), stay_id=STAY),
            metadata=auth(OTHER_HOSPITAL),
        )
    assert not_theirs.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert unknown.value.details() == not_theirs.value.details()
    assert discharges.stored_events() == 0


def test_readiness_for_a_closed_stay_is_failed_precondition(
    system: Harness, discharges: Discharges
) -> None:
    """The stay is admitted and closed through admissions, as the hospital's system does (its
    hospital keeps its relationship with the patient for a while after the stay), so the
    policy lets the hospital through and the stay itself says why not."""
    admissions = admissions_pb2_grpc.AdmissionServiceStub(
        system.channel(system.servers["admissions"])
    )
    stay = admissions.AdmitPatient(
        admissions_pb2.AdmitPatientRequest(
            metadata=meta("admit", hours=-72),
            patient=common_pb2.PatientIdentifier(**PATIENT),
            ward="Medisinsk sengepost 3",
            admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
            municipality_her_id=MUNICIPALITY.her_id,
        ),
        metadata=auth(HOSPITAL),
    )
    closed = admissions.CloseStay(
        admissions_pb2.CloseStayRequest(
            metadata=meta("out", hours=-50),
            stay_id=stay.stay_id,
            reason=admissions_pb2.STAY_CLOSE_REASON_DISCHARGED,
        ),
        metadata=auth(HOSPITAL),
    )
    discharges.app.stays.admitted(stay.stay_id, PATIENT, HOSPITAL.her_id, MUNICIPALITY.her_id)
    discharges.app.stays.closed(stay.stay_id, PATIENT, closed.version, HOSPITAL.her_id)
    system.wait_for_relationship(PATIENT, HOSPITAL.her_id, Basis.STAY_HOSPITAL)
    with pytest.raises(grpc.RpcError) as err:
        discharges.stub.DeclareReadyForDischarge(
            discharges_pb2.DeclareReadyForDischargeRequest(
                metadata=meta("ready", hours=-48), stay_id=stay.stay_id
            ),
            metadata=auth(HOSPITAL),
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "CLOSED" in (err.value.details() or "")
    assert discharges.stored_events() == 0


def test_answering_a_patient_not_ready_is_failed_precondition(discharges: Discharges) -> None:
    ready(discharges)
    discharges.stub.WithdrawReadiness(
        discharges_pb2.WithdrawReadinessRequest(
            metadata=meta("w", hours=-24), stay_id=STAY, reason="x"
        ),
        metadata=auth(HOSPITAL),
    )
    with pytest.raises(grpc.RpcError) as err:
        discharges.stub.AnswerReadiness(
            discharges_pb2.AnswerReadinessRequest(metadata=meta("a"), stay_id=STAY),
            metadata=auth(MUNICIPALITY),
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "NOT_READY" in (err.value.details() or "")


@pytest.mark.parametrize(
    ("actor", "rpc"),
    [
        (OTHER_HOSPITAL, "DeclareReadyForDischarge"),
        (MUNICIPALITY, "DeclareReadyForDischarge"),
        (OTHER_MUNICIPALITY, "AnswerReadiness"),
        (OTHER_HOSPITAL, "GetDischarge"),
    ],
)
def test_organisations_outside_the_stay_get_permission_denied(
    discharges: Discharges, actor: Actor, rpc: str
) -> None:
    if rpc != "DeclareReadyForDischarge":
        ready(discharges)
    request: Any
    if rpc == "GetDischarge":
        request = discharges_pb2.GetDischargeRequest(stay_id=STAY)
    elif rpc == "AnswerReadiness":
        request = discharges_pb2.AnswerReadinessRequest(metadata=meta("a"), stay_id=STAY)
    else:
        request = discharges_pb2.DeclareReadyForDischargeRequest(metadata=meta("r"), stay_id=STAY)
    with pytest.raises(grpc.RpcError) as err:
        getattr(discharges.stub, rpc)(request, metadata=auth(actor))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_stay_without_a_discharge_or_an_unknown_message_is_not_found(
    discharges: Discharges,
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        discharges.stub.GetDischarge(
            discharges_pb2.GetDischargeRequest(stay_id=STAY), metadata=auth(HOSPITAL)
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    ready(discharges)
    with pytest.raises(grpc.RpcError) as err:
        discharges.stub.RecordMessageReceipt(
            discharges_pb2.RecordDischargeMessageReceiptRequest(
                metadata=meta("r"),
                stay_id=STAY,
                message_id=UNKNOWN_ID,
                receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK),
            ),
            metadata=auth(MUNICIPALITY),
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer not-a-jwt"),)],
    ids=["no token", "garbage token"],
)
def test_calls_without_a_valid_token_are_unauthenticated(
    discharges: Discharges, metadata: Any
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        discharges.stub.DeclareReadyForDischarge(
            discharges_pb2.DeclareReadyForDischargeRequest(metadata=meta("r"), stay_id=STAY),
            metadata=metadata,
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert discharges.stored_events() == 0
