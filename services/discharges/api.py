"""DischargeService over gRPC: translate requests into commands, discharges into replies.
Errors are raised as domain errors; the shared interceptor maps them to status codes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

import grpc

from carepath.v1 import discharges_pb2, discharges_pb2_grpc
from services.discharges.application import DischargesApplication
from services.discharges.domain import Destination, Discharge, MessageType, ReadinessContent
from shared import api
from shared.access.enforce import AccessControl, Resolver, Resource
from shared.access.model import Basis, Relationship, grace_after_end
from shared.errors import InvalidArgument, NotFound
from shared.grpc_server import current_actor
from shared.times import utc_iso

STATE_TO_PB = {
    "NOT_READY": discharges_pb2.DISCHARGE_STATE_NOT_READY,
    "READY": discharges_pb2.DISCHARGE_STATE_READY,
    "DISCHARGED": discharges_pb2.DISCHARGE_STATE_DISCHARGED,
}
DESTINATION_FROM_PB = {
    discharges_pb2.DISCHARGE_DESTINATION_HOME: Destination.HOME,
    discharges_pb2.DISCHARGE_DESTINATION_HOME_WITH_SERVICES: Destination.HOME_WITH_SERVICES,
    discharges_pb2.DISCHARGE_DESTINATION_SHORT_TERM_NURSING_HOME: (
        Destination.SHORT_TERM_NURSING_HOME
    ),
    discharges_pb2.DISCHARGE_DESTINATION_LONG_TERM_NURSING_HOME: (
        Destination.LONG_TERM_NURSING_HOME
    ),
    discharges_pb2.DISCHARGE_DESTINATION_OTHER_HOSPITAL: Destination.OTHER_HOSPITAL,
}
DESTINATION_TO_PB = {v: k for k, v in DESTINATION_FROM_PB.items()}
MESSAGE_TYPE_TO_PB = {
    MessageType.READINESS_NOTICE: discharges_pb2.DISCHARGE_MESSAGE_TYPE_READINESS_NOTICE,
    MessageType.DISCHARGE_REPORT: discharges_pb2.DISCHARGE_MESSAGE_TYPE_DISCHARGE_REPORT,
    MessageType.EPICRISIS: discharges_pb2.DISCHARGE_MESSAGE_TYPE_EPICRISIS,
    MessageType.WITHDRAWAL_NOTICE: discharges_pb2.DISCHARGE_MESSAGE_TYPE_WITHDRAWAL_NOTICE,
    MessageType.DISCHARGE_NOTICE: discharges_pb2.DISCHARGE_MESSAGE_TYPE_DISCHARGE_NOTICE,
}


def _period_to_pb(period: dict[str, Any]) -> discharges_pb2.ReadinessPeriod:
    pb = discharges_pb2.ReadinessPeriod(
        ready_at=api.timestamp(period["ready_at"]),
        message_id=period["message_id"],
        withdrawal_reason=period["withdrawal_reason"] or "",
    )
    answer = period["answer"]
    if answer is not None:
        pb.answer.can_receive = answer["can_receive"]
        pb.answer.answered_at.CopyFrom(api.timestamp(answer["answered_at"]))
        if answer["receive_on"]:
            pb.answer.receive_on.CopyFrom(api.date_to_pb(date.fromisoformat(answer["receive_on"])))
    if period["withdrawn_at"]:
        pb.withdrawn_at.CopyFrom(api.timestamp(period["withdrawn_at"]))
    return pb


def discharge_to_pb(discharge: Discharge) -> discharges_pb2.Discharge:
    pb = discharges_pb2.Discharge(
        discharge_id=str(discharge.id),
        stay_id=discharge.stay_id,
        patient=api.patient_to_pb(discharge.patient),
        state=STATE_TO_PB[discharge.state.value],
        hospital_her_id=discharge.hospital_her_id,
        municipality_her_id=discharge.municipality_her_id,
        readiness_periods=[_period_to_pb(p) for p in discharge.readiness_periods],
        destination_her_id=discharge.destination_her_id or "",
        messages=[
            api.message_to_pb(
                discharges_pb2.DischargeMessage, m, MESSAGE_TYPE_TO_PB[MessageType(m["type"])]
            )
            for m in discharge.messages.values()
        ],
        version=discharge.version,
    )
    if discharge.destination is not None:
        pb.destination = DESTINATION_TO_PB[discharge.destination]
    if discharge.discharged_at:
        pb.discharged_at.CopyFrom(api.timestamp(discharge.discharged_at))
    return pb


class DischargeServicer(discharges_pb2_grpc.DischargeServiceServicer):
    def __init__(self, app: DischargesApplication) -> None:
        self._app = app

    def DeclareReadyForDischarge(
        self,
        request: discharges_pb2.DeclareReadyForDischargeRequest,
        context: grpc.ServicerContext,
    ) -> discharges_pb2.Discharge:
        ctx = api.command_context(request, current_actor())
        stay_id = api.uuid_field(request.stay_id, "stay_id")
        content = ReadinessContent(
            status=request.status.strip() or None,
            functional_level=request.functional_level.strip() or None,
            expected_course=request.expected_course.strip() or None,
            follow_up_needs=request.follow_up_needs.strip() or None,
        )
        return discharge_to_pb(self._app.declare_ready(ctx, stay_id, content))

    def AnswerReadiness(
        self, request: discharges_pb2.AnswerReadinessRequest, context: grpc.ServicerContext
    ) -> discharges_pb2.Discharge:
        ctx = api.command_context(request, current_actor())
        stay_id = api.uuid_field(request.stay_id, "stay_id")
        receive_on = (
            api.date_from_pb(request.receive_on, "receive_on")
            if request.HasField("receive_on")
            else None
        )
        discharge = self._app.answer_readiness(ctx, stay_id, request.can_receive, receive_on)
        return discharge_to_pb(discharge)

    def WithdrawReadiness(
        self, request: discharges_pb2.WithdrawReadinessRequest, context: grpc.ServicerContext
    ) -> discharges_pb2.Discharge:
        ctx = api.command_context(request, current_actor())
        stay_id = api.uuid_field(request.stay_id, "stay_id")
        reason = api.text(request.reason, "reason")
        return discharge_to_pb(self._app.withdraw_readiness(ctx, stay_id, reason))

    def DischargePatient(
        self, request: discharges_pb2.DischargePatientRequest, context: grpc.ServicerContext
    ) -> discharges_pb2.Discharge:
        ctx = api.command_context(request, current_actor())
        stay_id = api.uuid_field(request.stay_id, "stay_id")
        if request.destination not in DESTINATION_FROM_PB:
            raise InvalidArgument("destination", "is required")
        destination_her_id = (
            api.her_id(request.destination_her_id, "destination_her_id")
            if request.destination_her_id.strip()
            else None
        )
        discharge = self._app.discharge(
            ctx, stay_id, DESTINATION_FROM_PB[request.destination], destination_her_id
        )
        return discharge_to_pb(discharge)

    def SendEpicrisis(
        self, request: discharges_pb2.SendEpicrisisRequest, context: grpc.ServicerContext
    ) -> discharges_pb2.Discharge:
        ctx = api.command_context(request, current_actor())
        stay_id = api.uuid_field(request.stay_id, "stay_id")
        to_her_id = api.her_id(request.to_her_id, "to_her_id")
        return discharge_to_pb(self._app.send_epicrisis(ctx, stay_id, to_her_id))

    def RecordMessageReceipt(
        self,
        request: discharges_pb2.RecordDischargeMessageReceiptRequest,
        context: grpc.ServicerContext,
    ) -> discharges_pb2.Discharge:
        ctx = api.command_context(request, current_actor())
        stay_id = api.uuid_field(request.stay_id, "stay_id")
        message_id = api.uuid_field(request.message_id, "message_id")
        status, errors = api.receipt_from_request(request)
        discharge = self._app.record_message_receipt(ctx, stay_id, message_id, status, errors)
        return discharge_to_pb(discharge)

    def GetDischarge(
        self, request: discharges_pb2.GetDischargeRequest, context: grpc.ServicerContext
    ) -> discharges_pb2.Discharge:
        discharge = self._app.get_discharge(api.uuid_field(request.stay_id, "stay_id"))
        return discharge_to_pb(discharge)


SERVICE_NAMES = (discharges_pb2.DESCRIPTOR.services_by_name["DischargeService"].full_name,)


#: The discharge's messages that go to the municipality (their receiver cares for the patient).
MUNICIPAL_MESSAGES = frozenset(
    {
        MessageType.READINESS_NOTICE,
        MessageType.DISCHARGE_REPORT,
        MessageType.WITHDRAWAL_NOTICE,
        MessageType.DISCHARGE_NOTICE,
    }
)


def resolvers(app: DischargesApplication) -> dict[str, Resolver]:
    """A discharge (by its stay) and its own parties: the hospital responsible for the stay as
    discharges knows it, the hospitals of the discharge (until the window after it), the
    municipalities sent its messages while the stay is open, receivers owing a receipt."""

    def discharge(stay_id: UUID) -> Resource | None:
        known = app.stays.get(stay_id)
        try:
            found: Discharge | None = app.get_discharge(stay_id)
        except NotFound:
            found = None
        if found is None and known is None:
            return None
        parties = []
        open_until = None
        if known is not None and known.state == "OPEN":
            parties.append(Relationship.party(known.hospital_her_id, Basis.STAY_HOSPITAL))
        if found is not None:
            stay_open = known is None or known.state == "OPEN"
            ended = utc_iso(found.discharged_at) if found.discharged_at else None
            if ended is None and not stay_open:
                # Closed without a discharge (discharges does not know when): the discharge's
                # own parties end with the stay, so only the patient's relationships (with the
                # stay's real end, from the pathway) and receipts still owed count.
                parties += api.message_parties(found.messages.values(), (), None)
            else:
                until = None
                if ended is not None:
                    grace = grace_after_end(Basis.STAY_HOSPITAL)
                    until = utc_iso(datetime.fromisoformat(ended) + grace)
                hospitals = {found.hospital_her_id}
                hospitals.update(p["hospital_her_id"] for p in found.readiness_periods)
                parties += [Relationship.party(h, Basis.STAY_HOSPITAL, until) for h in hospitals]
                open_until = None if stay_open else ended
                parties += api.message_parties(
                    found.messages.values(), MUNICIPAL_MESSAGES, open_until
                )
        patient = known.patient if known is not None else found.patient  # type: ignore[union-attr]
        return Resource(patient, parties)

    return {"discharge": discharge}


def register(app: DischargesApplication, access: AccessControl) -> Any:
    def _register(server: grpc.Server) -> None:
        discharges_pb2_grpc.add_DischargeServiceServicer_to_server(DischargeServicer(app), server)

    return _register
