"""CorrespondenceService over gRPC: translate requests into commands, correspondences into
replies. What the registers say about the patient (fastlege, municipalities) is read from the
access facts the registry's events make — never from the request. Errors are raised as domain
errors; the shared interceptor maps them to status codes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import grpc

from carepath.v1 import common_pb2, correspondence_pb2, correspondence_pb2_grpc
from services.correspondence.application import CorrespondenceApplication
from services.correspondence.domain import Correspondence, MessageType, Registered
from shared import api
from shared.access.enforce import AccessControl, Resolver, Resource, current_call
from shared.access.model import Basis, Relationship
from shared.actors import OrgKind
from shared.errors import InvalidArgument, NotFound
from shared.grpc_server import current_actor

MESSAGE_TYPE_FROM_PB = {
    correspondence_pb2.CorrespondenceMessageType.Value(f"CORRESPONDENCE_MESSAGE_TYPE_{t.value}"): t
    for t in MessageType
}
MESSAGE_TYPE_TO_PB = {t: pb for pb, t in MESSAGE_TYPE_FROM_PB.items()}


def registered(relations: Iterable[Relationship], units: Iterable[Any] = ()) -> Registered:
    """The register facts among a patient's relationships now: the fastlege's office, and the
    municipalities the patient stays in (first) and lives in; and where the directory puts the
    municipal services among `units` (directory rows: her_id, kind, parent_her_id)."""
    held = list(relations)
    fastlege = next((r.her_id for r in held if r.basis is Basis.FASTLEGE), None)
    staying = [r.her_id for r in held if r.basis is Basis.TEMPORARY_RESIDENCE_MUNICIPALITY]
    living = [r.her_id for r in held if r.basis is Basis.RESIDENCE_MUNICIPALITY]
    unit_of = tuple(
        (u.her_id, u.parent_her_id)
        for u in units
        if u.kind == OrgKind.MUNICIPALITY.value and u.parent_her_id
    )
    return Registered(fastlege, tuple(dict.fromkeys(staying + living)), unit_of)


def _organisation(her_id: str, kind: OrgKind) -> common_pb2.Organisation:
    return common_pb2.Organisation(her_id=her_id, kind=api.ORG_KIND_TO_PB[kind])


def correspondence_to_pb(c: Correspondence) -> correspondence_pb2.Correspondence:
    messages = []
    for m in c.messages.values():
        pb = api.message_to_pb(
            correspondence_pb2.CorrespondenceMessage, m, MESSAGE_TYPE_TO_PB[MessageType(m["type"])]
        )
        pb.text = m["text"]
        messages.append(pb)
    reply = correspondence_pb2.Correspondence(
        correspondence_id=str(c.id),
        patient=api.patient_to_pb(c.patient),
        type=MESSAGE_TYPE_TO_PB[c.kind],
        opened_by=_organisation(c.opened_by, c.opened_by_kind),
        receiver=_organisation(c.receiver, c.receiver_kind),
        opened_at=api.timestamp(c.opened_at),
        awaiting_answer=c.awaits_answer,
        messages=messages,
        version=c.version,
    )
    if c.answered_at:
        reply.answered_at.CopyFrom(api.timestamp(c.answered_at))
    return reply


def _message_type(value: correspondence_pb2.CorrespondenceMessageType.ValueType) -> MessageType:
    if value not in MESSAGE_TYPE_FROM_PB:
        raise InvalidArgument("message_type", "is required")
    return MESSAGE_TYPE_FROM_PB[value]


class CorrespondenceServicer(correspondence_pb2_grpc.CorrespondenceServiceServicer):
    def __init__(self, app: CorrespondenceApplication, access: AccessControl) -> None:
        self._app = app
        self._access = access

    def _registered(self, patient_key: str, named: str | None) -> Registered:
        facts = self._access.facts
        units = facts.organisations([named]) if named else []
        return registered(facts.relations(patient_key, self._access.clock()), units)

    def SendMessage(
        self,
        request: correspondence_pb2.SendCorrespondenceMessageRequest,
        context: grpc.ServicerContext,
    ) -> correspondence_pb2.Correspondence:
        ctx = api.command_context(request, current_actor())
        patient = api.patient(request, "patient")
        kind = _message_type(request.message_type)
        text = api.text(request.text, "text")
        to_her_id = api.her_id(request.to_her_id, "to_her_id") if request.to_her_id else None
        key = current_call().patient_key or ""
        correspondence = self._app.send_message(
            ctx, patient, kind, text, self._registered(key, to_her_id), to_her_id
        )
        return correspondence_to_pb(correspondence)

    def AnswerRequest(
        self,
        request: correspondence_pb2.AnswerCorrespondenceRequestRequest,
        context: grpc.ServicerContext,
    ) -> correspondence_pb2.Correspondence:
        ctx = api.command_context(request, current_actor())
        correspondence_id = api.uuid_field(request.correspondence_id, "correspondence_id")
        kind = _message_type(request.message_type)
        text = api.text(request.text, "text")
        return correspondence_to_pb(self._app.answer_request(ctx, correspondence_id, kind, text))

    def RecordMessageReceipt(
        self,
        request: correspondence_pb2.RecordCorrespondenceMessageReceiptRequest,
        context: grpc.ServicerContext,
    ) -> correspondence_pb2.Correspondence:
        ctx = api.command_context(request, current_actor())
        correspondence_id = api.uuid_field(request.correspondence_id, "correspondence_id")
        message_id = api.uuid_field(request.message_id, "message_id")
        status, errors = api.receipt_from_request(request)
        correspondence = self._app.record_message_receipt(
            ctx, correspondence_id, message_id, status, errors
        )
        return correspondence_to_pb(correspondence)

    def GetCorrespondence(
        self, request: correspondence_pb2.GetCorrespondenceRequest, context: grpc.ServicerContext
    ) -> correspondence_pb2.Correspondence:
        correspondence_id = api.uuid_field(request.correspondence_id, "correspondence_id")
        return correspondence_to_pb(self._app.get_correspondence(correspondence_id))


SERVICE_NAMES = (correspondence_pb2.DESCRIPTOR.services_by_name["CorrespondenceService"].full_name,)


def resolvers(app: CorrespondenceApplication) -> dict[str, Resolver]:
    """A correspondence and its own parties: the receiver of each message, for its receipt
    (RECEIPT_DUE) and as a named receiver (MESSAGE_RECEIVER) — the request's receiver answers
    on it. The senders read and write on their own register relationship with the patient."""

    def correspondence(correspondence_id: UUID) -> Resource | None:
        try:
            found = app.get_correspondence(correspondence_id)
        except NotFound:
            return None
        parties = api.message_parties(found.messages.values(), (), None)
        parties += [
            Relationship.party(m["to_her_id"], Basis.MESSAGE_RECEIVER)
            for m in found.messages.values()
        ]
        return Resource(found.patient, parties)

    return {"correspondence": correspondence}


def register(app: CorrespondenceApplication, access: AccessControl) -> Any:
    def _register(server: grpc.Server) -> None:
        correspondence_pb2_grpc.add_CorrespondenceServiceServicer_to_server(
            CorrespondenceServicer(app, access), server
        )

    return _register
