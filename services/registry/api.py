"""RegistryService and AccessService over gRPC: register facts in, registrations and the
directory out; blocks, emergency access and the access log. Who may call what is the access
table's business (shared/access/table.py), applied by the shared interceptor before any of
this runs; errors are raised as domain errors and mapped to status codes there too."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import grpc

from carepath.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from services.registry.application import RegistryApplication
from services.registry.domain import AccessBlocks, Organisation, Registration, RegistryKind
from shared import api, pages
from shared.access.enforce import AccessControl, Resolver, current_call
from shared.access.model import Basis, EmergencyReason, emergency_duration
from shared.actors import OrgKind
from shared.audit import log as audit
from shared.errors import InvalidArgument
from shared.registers import Period

MAX_PAGE_SIZE = 200
#: ListEmergencyAccesses without `since`: the last 30 days.
REVIEW_WINDOW = timedelta(days=30)

KIND_FROM_PB = {pb: RegistryKind(kind.value) for kind, pb in api.ORG_KIND_TO_PB.items()}
KIND_TO_PB = {v: k for k, v in KIND_FROM_PB.items()}
REASON_FROM_PB = {
    common_pb2.EmergencyReason.Value(f"EMERGENCY_REASON_{r.value}"): r for r in EmergencyReason
}
REASON_TO_PB = {r.value: pb for pb, r in REASON_FROM_PB.items()}


def _period_to_pb(cls: Any, period: Period, **names: str) -> Any:
    pb = cls(valid_from=api.date_to_pb(period.valid_from), **names)
    if period.valid_to is not None:
        pb.valid_to.CopyFrom(api.date_to_pb(period.valid_to))
    return pb


def registration_to_pb(
    patient: dict[str, str], r: Registration | None
) -> registry_pb2.Registration:
    pb = registry_pb2.Registration(patient=api.patient_to_pb(patient))
    if r is None:
        return pb
    pb.version = r.version
    for period in r.residence_periods():
        pb.residence.append(
            _period_to_pb(registry_pb2.ResidencePeriod, period, municipality_her_id=period.her_id)
        )
    for period in r.temporary_residence_periods():
        pb.temporary_residence.append(
            _period_to_pb(registry_pb2.ResidencePeriod, period, municipality_her_id=period.her_id)
        )
    for period in r.fastlege_periods():
        pb.fastlege.append(
            _period_to_pb(
                registry_pb2.FastlegePeriod,
                period,
                gp_her_id=period.her_id,
                gp_hpr_number=period.hpr or "",
            )
        )
    death = r.__dict__.get("death")
    if death is not None:
        pb.died_at.CopyFrom(api.timestamp(death["occurred_at"]))
        pb.death_recorded_by.CopyFrom(api.actor_to_pb(death["actor"]))
    return pb


def organisation_to_pb(o: Organisation) -> registry_pb2.OrganisationEntry:
    return registry_pb2.OrganisationEntry(
        her_id=o.her_id,
        kind=KIND_TO_PB[o.kind],
        name=o.name,
        parent_her_id=o.parent_her_id or "",
        orgnr=o.orgnr or "",
    )


def blocks_to_pb(patient: dict[str, str], blocks: AccessBlocks | None) -> registry_pb2.AccessBlocks:
    pb = registry_pb2.AccessBlocks(patient=api.patient_to_pb(patient))
    if blocks is None:
        return pb
    pb.version = blocks.version
    for block_id, block in blocks.blocks.items():
        item = pb.blocks.add(
            block_id=block_id,
            her_id=block["her_id"] or "",
            hpr_number=block["hpr"] or "",
            blocked_at=api.timestamp(str(block["blocked_at"])),
        )
        if block["lifted_at"]:
            item.lifted_at.CopyFrom(api.timestamp(block["lifted_at"]))
    return pb


def _dates(request: Any) -> tuple[date, date | None]:
    """A period's first day (required) and last day (when the request has one and gives it)."""
    if not request.HasField("valid_from"):
        raise InvalidArgument("valid_from", "is required (the first day)")
    valid_from = api.date_from_pb(request.valid_from, "valid_from")
    valid_to = None
    if "valid_to" in request.DESCRIPTOR.fields_by_name and request.HasField("valid_to"):
        valid_to = api.date_from_pb(request.valid_to, "valid_to")
        if valid_to < valid_from:
            raise InvalidArgument("valid_to", "must not be before valid_from")
    return valid_from, valid_to


def _page(request: Any) -> tuple[int, int | None]:
    if not 0 <= request.page_size <= MAX_PAGE_SIZE:
        raise InvalidArgument("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
    return request.page_size or 50, pages.position(request)


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self, app: RegistryApplication) -> None:
        self._app = app

    def RecordDeath(
        self, request: registry_pb2.RecordDeathRequest, context: grpc.ServicerContext
    ) -> registry_pb2.Registration:
        ctx = api.command_context(request, current_call().actor)
        patient = api.patient(request)
        return registration_to_pb(patient, self._app.record_death(ctx, patient))

    def RecordResidence(
        self, request: registry_pb2.RecordResidenceRequest, context: grpc.ServicerContext
    ) -> registry_pb2.Registration:
        ctx = api.command_context(request, current_call().actor)
        patient = api.patient(request)
        municipality = api.her_id(request.municipality_her_id, "municipality_her_id")
        valid_from, _ = _dates(request)
        return registration_to_pb(
            patient, self._app.record_residence(ctx, patient, municipality, valid_from)
        )

    def RecordTemporaryResidence(
        self, request: registry_pb2.RecordTemporaryResidenceRequest, context: grpc.ServicerContext
    ) -> registry_pb2.Registration:
        ctx = api.command_context(request, current_call().actor)
        patient = api.patient(request)
        municipality = api.her_id(request.municipality_her_id, "municipality_her_id")
        valid_from, valid_to = _dates(request)
        registration = self._app.record_temporary_residence(
            ctx, patient, municipality, valid_from, valid_to
        )
        return registration_to_pb(patient, registration)

    def AssignFastlege(
        self, request: registry_pb2.AssignFastlegeRequest, context: grpc.ServicerContext
    ) -> registry_pb2.Registration:
        ctx = api.command_context(request, current_call().actor)
        patient = api.patient(request)
        gp = api.her_id(request.gp_her_id, "gp_her_id")
        hpr = api.hpr(request.gp_hpr_number, "gp_hpr_number")
        valid_from, valid_to = _dates(request)
        registration = self._app.assign_fastlege(ctx, patient, gp, hpr, valid_from, valid_to)
        return registration_to_pb(patient, registration)

    def RegisterOrganisation(
        self, request: registry_pb2.RegisterOrganisationRequest, context: grpc.ServicerContext
    ) -> registry_pb2.OrganisationEntry:
        ctx = api.command_context(request, current_call().actor)
        her_id = api.her_id(request.her_id, "her_id")
        if request.kind not in KIND_FROM_PB:
            raise InvalidArgument("kind", "must be MUNICIPALITY, GP, HOSPITAL or REGISTRY")
        name = api.text(request.name, "name")
        parent = (
            api.her_id(request.parent_her_id, "parent_her_id")
            if request.parent_her_id.strip()
            else None
        )
        orgnr = api.orgnr(request.orgnr, "orgnr")
        organisation = self._app.register_organisation(
            ctx, her_id, KIND_FROM_PB[request.kind], name, parent, orgnr
        )
        return organisation_to_pb(organisation)

    def GetRegistration(
        self, request: registry_pb2.GetRegistrationRequest, context: grpc.ServicerContext
    ) -> registry_pb2.Registration:
        patient = api.patient(request)
        return registration_to_pb(patient, self._app.get_registration(patient))

    def ListOrganisations(
        self, request: registry_pb2.ListOrganisationsRequest, context: grpc.ServicerContext
    ) -> registry_pb2.ListOrganisationsResponse:
        if not request.her_ids:  # at most: shared/limits.toml
            raise InvalidArgument("her_ids", "give at least one HER-id")
        her_ids = [api.her_id(h, f"her_ids[{i}]") for i, h in enumerate(request.her_ids)]
        return registry_pb2.ListOrganisationsResponse(
            organisations=[organisation_to_pb(o) for o in self._app.organisations(her_ids)]
        )


class AccessServicer(registry_pb2_grpc.AccessServiceServicer):
    def __init__(self, app: RegistryApplication, access: AccessControl) -> None:
        self._app = app
        self._access = access

    def BlockAccess(
        self, request: registry_pb2.BlockAccessRequest, context: grpc.ServicerContext
    ) -> registry_pb2.AccessBlocks:
        ctx = api.command_context(request, current_call().actor)
        patient = api.patient(request)
        party = request.WhichOneof("party")
        if party == "her_id":
            her_id, hpr = api.her_id(request.her_id, "her_id"), None
        elif party == "hpr_number":
            her_id, hpr = None, api.hpr(request.hpr_number, "hpr_number")
        else:
            raise InvalidArgument("party", "give the her_id or the hpr_number to block")
        return blocks_to_pb(patient, self._app.block(ctx, patient, her_id, hpr))

    def LiftBlock(
        self, request: registry_pb2.LiftBlockRequest, context: grpc.ServicerContext
    ) -> registry_pb2.AccessBlocks:
        ctx = api.command_context(request, current_call().actor)
        patient = api.patient(request)
        block_id = api.uuid_field(request.block_id, "block_id")
        return blocks_to_pb(patient, self._app.lift_block(ctx, patient, block_id))

    def GetBlocks(
        self, request: registry_pb2.GetBlocksRequest, context: grpc.ServicerContext
    ) -> registry_pb2.AccessBlocks:
        patient = api.patient(request)
        return blocks_to_pb(patient, self._app.get_blocks(patient))

    def RequestEmergencyAccess(
        self, request: registry_pb2.RequestEmergencyAccessRequest, context: grpc.ServicerContext
    ) -> registry_pb2.EmergencyAccessGrant:
        """The grant is this call's own audit row (reason and justification on it): the policy
        finds it there for the next reads."""
        call = current_call()
        if request.reason not in REASON_FROM_PB:
            raise InvalidArgument("reason", "is required (a coded EmergencyReason)")
        justification = api.text(request.justification, "justification")
        call.emergency = (REASON_FROM_PB[request.reason].value, justification)
        granted = self._access.clock()
        return registry_pb2.EmergencyAccessGrant(
            patient=request.patient,
            granted_at=api.timestamp(granted),
            expires_at=api.timestamp(granted + emergency_duration()),
        )

    def ListEmergencyAccesses(
        self, request: registry_pb2.ListEmergencyAccessesRequest, context: grpc.ServicerContext
    ) -> registry_pb2.ListEmergencyAccessesResponse:
        call = current_call()
        size, before = _page(request)
        since = (
            request.since.ToDatetime(tzinfo=UTC)
            if request.HasField("since")
            else datetime.now(UTC) - REVIEW_WINDOW
        )
        found = audit.emergency_accesses(
            self._access.audit.engine, call.actor.her_id, since, size + 1, before
        )
        reply = registry_pb2.ListEmergencyAccessesResponse()
        for row, reads in found[:size]:
            system, value = row.patient_key.split("|", 1)
            granted = datetime.fromisoformat(row.at)
            reply.accesses.add(
                patient=common_pb2.PatientIdentifier(system=system, value=value),
                actor=api.actor_to_pb(
                    {
                        "her_id": row.actor_her_id,
                        "org_kind": row.actor_kind,
                        "hpr": row.actor_hpr or "",
                    }
                ),
                granted_at=api.timestamp(granted),
                expires_at=api.timestamp(granted + emergency_duration()),
                reason=REASON_TO_PB.get(row.emergency_reason or "", 0),
                justification=row.emergency_text or "",
                reads=reads,
            )
            call.disclosed[row.patient_key] = Basis.SUPERVISOR
        if len(found) > size:
            reply.next_page_token = pages.next_token(request, found[size - 1][0].id)
        return reply

    def ListAccesses(
        self, request: registry_pb2.ListAccessesRequest, context: grpc.ServicerContext
    ) -> registry_pb2.ListAccessesResponse:
        patient = api.patient(request)
        size, before = _page(request)
        key = f"{patient['system']}|{patient['value']}"
        rows = audit.accesses(self._access.audit.engine, key, size + 1, before)
        names = {
            o.her_id: o.name for o in self._access.facts.organisations(r.actor_her_id for r in rows)
        }
        reply = registry_pb2.ListAccessesResponse()
        for row in rows[:size]:
            by_self = row.actor_kind == OrgKind.CITIZEN.value
            reply.accesses.add(
                at=api.timestamp(row.at),
                actor=(
                    None
                    if by_self
                    else api.actor_to_pb(
                        {
                            "her_id": row.actor_her_id,
                            "org_kind": row.actor_kind,
                            "hpr": row.actor_hpr or "",
                        }
                    )
                ),
                organisation_name=names.get(row.actor_her_id, ""),
                call=row.call,
                outcome=row.outcome,
                basis=api.basis_to_pb(row.basis),
                purpose=api.purpose_to_pb(row.purpose),
                emergency=row.basis == Basis.EMERGENCY.value,
                emergency_reason=REASON_TO_PB.get(row.emergency_reason or "", 0),
                by_self=by_self,
            )
        if len(rows) > size:
            reply.next_page_token = pages.next_token(request, rows[size - 1].id)
        return reply


SERVICE_NAMES = (
    registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name,
    registry_pb2.DESCRIPTOR.services_by_name["AccessService"].full_name,
)


def resolvers(app: RegistryApplication) -> dict[str, Resolver]:
    """Registry calls name their patient in the request: nothing to resolve."""
    return {}


def register(app: RegistryApplication, access: AccessControl) -> Any:
    def _register(server: grpc.Server) -> None:
        registry_pb2_grpc.add_RegistryServiceServicer_to_server(RegistryServicer(app), server)
        registry_pb2_grpc.add_AccessServiceServicer_to_server(AccessServicer(app, access), server)

    return _register
