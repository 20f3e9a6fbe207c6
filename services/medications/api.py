"""MedicationService over gRPC: translate requests into commands, medication lists into replies.
Errors are raised as domain errors; the shared interceptor maps them to status codes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from carepath.v1 import medications_pb2, medications_pb2_grpc
from services.medications.application import MedicationsApplication
from services.medications.domain import ReconciliationSource
from shared import api
from shared.access.enforce import AccessControl, Resolver
from shared.api import SOURCE_FROM_PB, medication_list_to_pb
from shared.errors import InvalidArgument
from shared.grpc_server import current_actor


def _entry_id(request: Any) -> UUID:
    return api.uuid_field(request.entry_id, "entry_id")


def _optional_text(value: str, field: str) -> str | None:
    return api.text(value, field) if value.strip() else None


def _sources(values: Any) -> list[ReconciliationSource]:
    sources = []
    for i, value in enumerate(values):
        if value not in SOURCE_FROM_PB:
            raise InvalidArgument(f"sources[{i}]", "is not a known reconciliation source")
        sources.append(SOURCE_FROM_PB[value])
    return sources  # the domain requires at least one


def _as_of(request: medications_pb2.GetMedicationListRequest) -> datetime | None:
    if not request.HasField("as_of"):
        return None
    as_of: Timestamp = request.as_of
    return as_of.ToDatetime(tzinfo=UTC)  # within 1900–9999: shared.limits


class MedicationServicer(medications_pb2_grpc.MedicationServiceServicer):
    def __init__(self, app: MedicationsApplication) -> None:
        self._app = app

    def PrescribeMedication(
        self, request: medications_pb2.PrescribeMedicationRequest, context: grpc.ServicerContext
    ) -> medications_pb2.MedicationList:
        ctx = api.command_context(request, current_actor())
        patient = api.patient(request)
        if not request.HasField("medication"):
            raise InvalidArgument("medication", "is required (atc_code and name)")
        name = api.text(request.medication.name, "medication.name")
        dose = api.text(request.dose, "dose")
        reason = _optional_text(request.reason, "reason")
        view = self._app.prescribe(ctx, patient, request.medication.atc_code, name, dose, reason)
        return medication_list_to_pb(view)

    def ChangeDose(
        self, request: medications_pb2.ChangeDoseRequest, context: grpc.ServicerContext
    ) -> medications_pb2.MedicationList:
        ctx = api.command_context(request, current_actor())
        patient = api.patient(request)
        entry_id = _entry_id(request)
        dose = api.text(request.dose, "dose")
        reason = _optional_text(request.reason, "reason")
        return medication_list_to_pb(self._app.change_dose(ctx, patient, entry_id, dose, reason))

    def PauseMedication(
        self, request: medications_pb2.PauseMedicationRequest, context: grpc.ServicerContext
    ) -> medications_pb2.MedicationList:
        ctx = api.command_context(request, current_actor())
        patient = api.patient(request)
        entry_id = _entry_id(request)
        reason = api.text(request.reason, "reason")
        return medication_list_to_pb(self._app.pause(ctx, patient, entry_id, reason))

    def ResumeMedication(
        self, request: medications_pb2.ResumeMedicationRequest, context: grpc.ServicerContext
    ) -> medications_pb2.MedicationList:
        ctx = api.command_context(request, current_actor())
        patient = api.patient(request)
        return medication_list_to_pb(self._app.resume(ctx, patient, _entry_id(request)))

    def DiscontinueMedication(
        self,
        request: medications_pb2.DiscontinueMedicationRequest,
        context: grpc.ServicerContext,
    ) -> medications_pb2.MedicationList:
        ctx = api.command_context(request, current_actor())
        patient = api.patient(request)
        entry_id = _entry_id(request)
        reason = api.text(request.reason, "reason")
        return medication_list_to_pb(self._app.discontinue(ctx, patient, entry_id, reason))

    def ReconcileMedicationList(
        self,
        request: medications_pb2.ReconcileMedicationListRequest,
        context: grpc.ServicerContext,
    ) -> medications_pb2.MedicationList:
        ctx = api.command_context(request, current_actor())
        patient = api.patient(request)
        sources = _sources(request.sources)
        note = _optional_text(request.note, "note")
        return medication_list_to_pb(self._app.reconcile(ctx, patient, sources, note))

    def GetMedicationList(
        self, request: medications_pb2.GetMedicationListRequest, context: grpc.ServicerContext
    ) -> medications_pb2.MedicationList:
        patient = api.patient(request)
        return medication_list_to_pb(self._app.get_list(patient, _as_of(request)))


SERVICE_NAMES = (medications_pb2.DESCRIPTOR.services_by_name["MedicationService"].full_name,)


def resolvers(app: MedicationsApplication) -> dict[str, Resolver]:
    """Medication calls name their patient in the request: nothing to resolve."""
    return {}


def register(app: MedicationsApplication, access: AccessControl) -> Any:
    def _register(server: grpc.Server) -> None:
        medications_pb2_grpc.add_MedicationServiceServicer_to_server(
            MedicationServicer(app), server
        )

    return _register
