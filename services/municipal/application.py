"""Municipal service commands: load → change → save, idempotent on the calling
municipality's command_id."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from services.municipal.contract import CONTRACT
from services.municipal.domain import EndReason, MunicipalService, ServiceKind, service_id_for
from shared.domain import CommandContext
from shared.store import CarepathApplication

WHAT = "municipal service"


class MunicipalApplication(CarepathApplication):
    name = "municipal"
    contract = CONTRACT

    def decide(
        self,
        ctx: CommandContext,
        patient: dict[str, str],
        kind: ServiceKind,
        starts_on: date,
        institution_her_id: str | None,
    ) -> MunicipalService:
        service_id = service_id_for(ctx.actor.her_id, ctx.command_id)
        return self.create_once(
            MunicipalService,
            service_id,
            ctx,
            WHAT,
            lambda: MunicipalService.decide(ctx, patient, kind, starts_on, institution_her_id),
        )

    def start(self, ctx: CommandContext, service_id: UUID) -> MunicipalService:
        return self.change(MunicipalService, service_id, ctx, WHAT, lambda s: s.start(ctx))

    def end(self, ctx: CommandContext, service_id: UUID, reason: EndReason) -> MunicipalService:
        return self.change(MunicipalService, service_id, ctx, WHAT, lambda s: s.end(ctx, reason))

    def get_service(self, service_id: UUID) -> MunicipalService:
        return self.load(MunicipalService, service_id, WHAT)
