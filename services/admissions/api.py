"""AdmissionService over gRPC: translate requests into commands, stays into replies.
Errors are raised as domain errors; the shared interceptor maps them to status codes."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import grpc

from carepath.v1 import admissions_pb2, admissions_pb2_grpc
from services.admissions.application import AdmissionsApplication
from services.admissions.domain import AdmissionType, CloseReason, MessageType, Stay
from shared import api
from shared.access.enforce import AccessControl, Resolver, Resource
from shared.access.model import Basis, Relationship, grace_after_end
from shared.errors import InvalidArgument, NotFound
from shared.grpc_server import current_actor
from shared.times import utc_iso

STATE_TO_PB = {
    "OPEN": admissions_pb2.STAY_STATE_OPEN,
    "CLOSED": admissions_pb2.STAY_STATE_CLOSED,
}
ADMISSION_TYPE_FROM_PB = {
    admissions_pb2.ADMISSION_TYPE_ACUTE: AdmissionType.ACUTE,
    admissions_pb2.ADMISSION_TYPE_ELECTIVE: AdmissionType.ELECTIVE,
}
ADMISSION_TYPE_TO_PB = {v: k for k, v in ADMISSION_TYPE_FROM_PB.items()}
CLOSE_REASON_FROM_PB = {admissions_pb2.STAY_CLOSE_REASON_DISCHARGED: CloseReason.DISCHARGED}
CLOSE_REASON_TO_PB = {v: k for k, v in CLOSE_REASON_FROM_PB.items()}
MESSAGE_TYPE_TO_PB = {
    MessageType.ADMISSION_NOTICE: admissions_pb2.STAY_MESSAGE_TYPE_ADMISSION_NOTICE,
    MessageType.ADMISSION_REPORT: admissions_pb2.STAY_MESSAGE_TYPE_ADMISSION_REPORT,
    MessageType.HEALTH_INFORMATION: admissions_pb2.STAY_MESSAGE_TYPE_HEALTH_INFORMATION,
}


def stay_to_pb(stay: Stay) -> admissions_pb2.Stay:
    pb = admissions_pb2.Stay(
        stay_id=str(stay.id),
        patient=api.patient_to_pb(stay.patient),
        state=STATE_TO_PB[stay.state.value],
        admission_type=ADMISSION_TYPE_TO_PB[stay.admission_type],
        referral_id=stay.referral_id or "",
        admitting_hospital_her_id=stay.admitting_hospital_her_id,
        hospital_her_id=stay.hospital_her_id,
        ward=stay.ward,
        municipality_her_id=stay.municipality_her_id,
        municipal_services_likely=stay.municipal_services_likely,
        existing_service_user=stay.existing_service_user,
        admitted_at=api.timestamp(stay.admitted_at),
        transfers=[
            admissions_pb2.StayTransfer(
                from_hospital_her_id=t["from_hospital_her_id"],
                from_ward=t["from_ward"],
                to_hospital_her_id=t["to_hospital_her_id"],
                to_ward=t["to_ward"],
                transferred_at=api.timestamp(t["transferred_at"]),
            )
            for t in stay.transfers
        ],
        messages=[
            api.message_to_pb(
                admissions_pb2.StayMessage, m, MESSAGE_TYPE_TO_PB[MessageType(m["type"])]
            )
            for m in stay.messages.values()
        ],
        version=stay.version,
    )
    if stay.closed_at:
        pb.closed_at.CopyFrom(api.timestamp(stay.closed_at))
    if stay.close_reason:
        pb.close_reason = CLOSE_REASON_TO_PB[stay.close_reason]
    due = stay.health_information_due_at
    if due is not None:
        pb.health_information_due_at.CopyFrom(api.timestamp(due))
    return pb


class AdmissionServicer(admissions_pb2_grpc.AdmissionServiceServicer):
    def __init__(self, app: AdmissionsApplication) -> None:
        self._app = app

    def AdmitPatient(
        self, request: admissions_pb2.AdmitPatientRequest, context: grpc.ServicerContext
    ) -> admissions_pb2.Stay:
        ctx = api.command_context(request, current_actor())
        patient = api.patient(request)
        ward = api.text(request.ward, "ward")
        if request.admission_type not in ADMISSION_TYPE_FROM_PB:
            raise InvalidArgument("admission_type", "is required (ACUTE or ELECTIVE)")
        referral_id = (
            api.uuid_field(request.referral_id, "referral_id") if request.referral_id else None
        )
        municipality = api.her_id(request.municipality_her_id, "municipality_her_id")
        stay = self._app.admit_patient(
            ctx,
            patient,
            ward,
            ADMISSION_TYPE_FROM_PB[request.admission_type],
            referral_id,
            municipality,
            request.municipal_services_likely,
            request.existing_service_user,
        )
        return stay_to_pb(stay)

    def SendAdmissionNotice(
        self, request: admissions_pb2.SendAdmissionNoticeRequest, context: grpc.ServicerContext
    ) -> admissions_pb2.Stay:
        ctx = api.command_context(request, current_actor())
        stay_id = api.uuid_field(request.stay_id, "stay_id")
        return stay_to_pb(self._app.send_admission_notice(ctx, stay_id))

    def RecordAdmissionReport(
        self, request: admissions_pb2.RecordAdmissionReportRequest, context: grpc.ServicerContext
    ) -> admissions_pb2.Stay:
        ctx = api.command_context(request, current_actor())
        stay_id = api.uuid_field(request.stay_id, "stay_id")
        return stay_to_pb(self._app.record_admission_report(ctx, stay_id))

    def SendHealthInformation(
        self, request: admissions_pb2.SendHealthInformationRequest, context: grpc.ServicerContext
    ) -> admissions_pb2.Stay:
        ctx = api.command_context(request, current_actor())
        stay_id = api.uuid_field(request.stay_id, "stay_id")
        return stay_to_pb(self._app.send_health_information(ctx, stay_id))

    def RecordMessageReceipt(
        self, request: admissions_pb2.RecordMessageReceiptRequest, context: grpc.ServicerContext
    ) -> admissions_pb2.Stay:
        ctx = api.command_context(request, current_actor())
        stay_id = api.uuid_field(request.stay_id, "stay_id")
        message_id = api.uuid_field(request.message_id, "message_id")
        status, errors = api.receipt_from_request(request)
        stay = self._app.record_message_receipt(ctx, stay_id, message_id, status, errors)
        return stay_to_pb(stay)

    def TransferPatient(
        self, request: admissions_pb2.TransferPatientRequest, context: grpc.ServicerContext
    ) -> admissions_pb2.Stay:
        ctx = api.command_context(request, current_actor())
        stay_id = api.uuid_field(request.stay_id, "stay_id")
        to_hospital = api.her_id(request.to_hospital_her_id, "to_hospital_her_id")
        to_ward = api.text(request.to_ward, "to_ward")
        return stay_to_pb(self._app.transfer_patient(ctx, stay_id, to_hospital, to_ward))

    def CloseStay(
        self, request: admissions_pb2.CloseStayRequest, context: grpc.ServicerContext
    ) -> admissions_pb2.Stay:
        ctx = api.command_context(request, current_actor())
        stay_id = api.uuid_field(request.stay_id, "stay_id")
        if request.reason not in CLOSE_REASON_FROM_PB:
            raise InvalidArgument("reason", "is required (DISCHARGED)")
        return stay_to_pb(self._app.close_stay(ctx, stay_id, CLOSE_REASON_FROM_PB[request.reason]))

    def GetStay(
        self, request: admissions_pb2.GetStayRequest, context: grpc.ServicerContext
    ) -> admissions_pb2.Stay:
        return stay_to_pb(self._app.get_stay(api.uuid_field(request.stay_id, "stay_id")))

    def ListStays(
        self, request: admissions_pb2.ListStaysRequest, context: grpc.ServicerContext
    ) -> admissions_pb2.ListStaysResponse:
        stays = self._app.list_stays(api.patient(request))
        return admissions_pb2.ListStaysResponse(stays=[stay_to_pb(s) for s in stays])


SERVICE_NAMES = (admissions_pb2.DESCRIPTOR.services_by_name["AdmissionService"].full_name,)


#: The stay's messages that go to the municipality (their receiver cares for the patient).
MUNICIPAL_MESSAGES = frozenset({MessageType.ADMISSION_NOTICE, MessageType.HEALTH_INFORMATION})


def stay_parties(stay: Stay) -> list[Relationship]:
    """A stay's own parties: every hospital of it (until the window after discharge), the
    municipalities sent its messages (while it is open), receivers owing a receipt."""
    closed = utc_iso(stay.closed_at) if stay.closed_at else None
    until = None
    if closed is not None:
        until = utc_iso(datetime.fromisoformat(closed) + grace_after_end(Basis.STAY_HOSPITAL))
    parties = [Relationship.party(h, Basis.STAY_HOSPITAL, until) for h in stay.hospitals]
    return parties + api.message_parties(stay.messages.values(), MUNICIPAL_MESSAGES, closed)


def resolvers(app: AdmissionsApplication) -> dict[str, Resolver]:
    def stay(stay_id: UUID) -> Resource | None:
        try:
            found = app.get_stay(stay_id)
        except NotFound:
            return None
        return Resource(found.patient, stay_parties(found))

    return {"stay": stay}


def register(app: AdmissionsApplication, access: AccessControl) -> Any:
    def _register(server: grpc.Server) -> None:
        admissions_pb2_grpc.add_AdmissionServiceServicer_to_server(AdmissionServicer(app), server)

    return _register
