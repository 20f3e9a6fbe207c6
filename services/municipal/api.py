"""MunicipalService over gRPC: translate requests into commands, services into replies.
Errors are raised as domain errors; the shared interceptor maps them to status codes."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import grpc

from carepath.v1 import municipal_pb2, municipal_pb2_grpc
from services.municipal.application import MunicipalApplication
from services.municipal.domain import EndReason, MunicipalService, ServiceKind, ServiceState
from shared import api
from shared.access.enforce import AccessControl, Resolver, Resource, current_call
from shared.access.facts import FactStore
from shared.errors import InvalidArgument, InvalidTransition, NotFound
from shared.grpc_server import current_actor

KIND_FROM_PB = {
    municipal_pb2.MunicipalServiceKind.Value(f"MUNICIPAL_SERVICE_KIND_{k.value}"): k
    for k in ServiceKind
}
KIND_TO_PB = {k: pb for pb, k in KIND_FROM_PB.items()}
STATE_TO_PB = {
    s: municipal_pb2.MunicipalServiceState.Value(f"MUNICIPAL_SERVICE_STATE_{s.value}")
    for s in ServiceState
}
REASON_FROM_PB = {
    municipal_pb2.ServiceEndReason.Value(f"SERVICE_END_REASON_{r.value}"): r for r in EndReason
}
REASON_TO_PB = {r: pb for pb, r in REASON_FROM_PB.items()}


def _service_id(request: Any) -> UUID:
    return api.uuid_field(request.service_id, "service_id")


def service_to_pb(s: MunicipalService) -> municipal_pb2.MunicipalServiceRecord:
    pb = municipal_pb2.MunicipalServiceRecord(
        service_id=str(s.id),
        patient=api.patient_to_pb(s.patient),
        kind=KIND_TO_PB[s.kind],
        state=STATE_TO_PB[s.state],
        municipality_her_id=s.municipality_her_id,
        institution_her_id=s.institution_her_id or "",
        decided_at=api.timestamp(s.decided_at),
        starts_on=api.date_to_pb(s.starts_on),
        version=s.version,
    )
    if s.started_at is not None:
        pb.started_at.CopyFrom(api.timestamp(s.started_at))
    if s.ended_at is not None:
        pb.ended_at.CopyFrom(api.timestamp(s.ended_at))
    if s.end_reason is not None:
        pb.end_reason = REASON_TO_PB[s.end_reason]
    return pb


class MunicipalServicer(municipal_pb2_grpc.MunicipalServiceServicer):
    def __init__(self, app: MunicipalApplication, facts: FactStore) -> None:
        self._app = app
        self._facts = facts

    def _alive(self, action: str) -> None:
        """Care is not decided or started for a patient the registers say has died (the death
        is a register fact, as the pathway's read model holds it: never the request's word)."""
        key = current_call().patient_key
        if key is not None and self._facts.died_at(key) is not None:
            raise InvalidTransition("the patient", "dead by the registers", action)

    def DecideService(
        self, request: municipal_pb2.DecideServiceRequest, context: grpc.ServicerContext
    ) -> municipal_pb2.MunicipalServiceRecord:
        ctx = api.command_context(request, current_actor())
        patient = api.patient(request)
        if request.kind not in KIND_FROM_PB:
            raise InvalidArgument("kind", "is required (the kind of municipal service)")
        if not request.HasField("starts_on"):
            raise InvalidArgument("starts_on", "is required (the day the service starts)")
        starts_on = api.date_from_pb(request.starts_on, "starts_on")
        institution = (
            api.her_id(request.institution_her_id, "institution_her_id")
            if request.institution_her_id
            else None
        )
        self._alive("decide a municipal service")
        service = self._app.decide(ctx, patient, KIND_FROM_PB[request.kind], starts_on, institution)
        return service_to_pb(service)

    def StartService(
        self, request: municipal_pb2.StartServiceRequest, context: grpc.ServicerContext
    ) -> municipal_pb2.MunicipalServiceRecord:
        ctx = api.command_context(request, current_actor())
        self._alive("start a municipal service")
        return service_to_pb(self._app.start(ctx, _service_id(request)))

    def EndService(
        self, request: municipal_pb2.EndServiceRequest, context: grpc.ServicerContext
    ) -> municipal_pb2.MunicipalServiceRecord:
        ctx = api.command_context(request, current_actor())
        service_id = _service_id(request)
        if request.reason not in REASON_FROM_PB:
            raise InvalidArgument("reason", "is required (why the service ends)")
        return service_to_pb(self._app.end(ctx, service_id, REASON_FROM_PB[request.reason]))

    def GetService(
        self, request: municipal_pb2.GetServiceRequest, context: grpc.ServicerContext
    ) -> municipal_pb2.MunicipalServiceRecord:
        return service_to_pb(self._app.get_service(_service_id(request)))


SERVICE_NAMES = (municipal_pb2.DESCRIPTOR.services_by_name["MunicipalService"].full_name,)


def resolvers(app: MunicipalApplication) -> dict[str, Resolver]:
    """A service's patient. It gives its deciding municipality no access of its own: who may
    act on it is decided on the registers' relationships (residence, oppholdskommune)."""

    def service(service_id: UUID) -> Resource | None:
        try:
            found = app.get_service(service_id)
        except NotFound:
            return None
        return Resource(found.patient, [])

    return {"municipal_service": service}


def register(app: MunicipalApplication, access: AccessControl) -> Any:
    def _register(server: grpc.Server) -> None:
        municipal_pb2_grpc.add_MunicipalServiceServicer_to_server(
            MunicipalServicer(app, access.facts), server
        )

    return _register
