"""Registry commands and queries: load (or start) → change → save, idempotent on the calling
organisation's command_id; and the bulk import of a register extract."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from uuid import UUID

from services.registry.contract import CONTRACT
from services.registry.domain import (
    AccessBlocks,
    Organisation,
    Registration,
    RegistryKind,
    access_blocks_id_for,
    organisation_id_for,
    registration_id_for,
)
from shared.domain import CommandContext
from shared.errors import NotFound
from shared.store import CarepathApplication

REGISTRATION = "registration"
ORGANISATION = "organisation"
BLOCKS = "blocks"


class RegistryApplication(CarepathApplication):
    name = "registry"
    contract = CONTRACT
    internal_event_types = frozenset({"RegistrationStarted", "AccessBlocksStarted"})

    # --- registrations ---------------------------------------------------------------------

    def _registration(
        self, ctx: CommandContext, patient: dict[str, str], change: object
    ) -> Registration:
        return self.change(
            Registration,
            registration_id_for(patient),
            ctx,
            REGISTRATION,
            change,  # type: ignore[arg-type]
            create=lambda: Registration.start(ctx, patient),
        )

    def record_residence(
        self, ctx: CommandContext, patient: dict[str, str], municipality: str, valid_from: date
    ) -> Registration:
        return self._registration(
            ctx, patient, lambda r: r.record_residence(ctx, municipality, valid_from)
        )

    def record_temporary_residence(
        self,
        ctx: CommandContext,
        patient: dict[str, str],
        municipality: str,
        valid_from: date,
        valid_to: date | None,
    ) -> Registration:
        return self._registration(
            ctx,
            patient,
            lambda r: r.record_temporary_residence(ctx, municipality, valid_from, valid_to),
        )

    def assign_fastlege(
        self,
        ctx: CommandContext,
        patient: dict[str, str],
        gp_her_id: str,
        gp_hpr: str,
        valid_from: date,
        valid_to: date | None,
    ) -> Registration:
        return self._registration(
            ctx,
            patient,
            lambda r: r.assign_fastlege(ctx, gp_her_id, gp_hpr, valid_from, valid_to),
        )

    def get_registration(self, patient: dict[str, str]) -> Registration:
        return self.load(Registration, registration_id_for(patient), REGISTRATION)

    # --- the directory ---------------------------------------------------------------------

    def register_organisation(
        self,
        ctx: CommandContext,
        her_id: str,
        kind: RegistryKind,
        name: str,
        parent_her_id: str | None,
    ) -> Organisation:
        return self.change(
            Organisation,
            organisation_id_for(her_id),
            ctx,
            ORGANISATION,
            lambda o: o.change(ctx, kind, name, parent_her_id),
            create=lambda: Organisation.register(ctx, her_id, kind, name, parent_her_id),
        )

    def organisations(self, her_ids: Iterable[str]) -> list[Organisation]:
        """The known ones of these HER-ids, in the order given (unknown ones left out)."""
        found = []
        for her_id in dict.fromkeys(her_ids):
            try:
                found.append(self.load(Organisation, organisation_id_for(her_id), ORGANISATION))
            except NotFound:
                continue
        return found

    # --- blocks ----------------------------------------------------------------------------

    def block(
        self, ctx: CommandContext, patient: dict[str, str], her_id: str | None, hpr: str | None
    ) -> AccessBlocks:
        return self.change(
            AccessBlocks,
            access_blocks_id_for(patient),
            ctx,
            BLOCKS,
            lambda b: b.block(ctx, her_id, hpr),
            create=lambda: AccessBlocks.start(ctx, patient),
        )

    def lift_block(
        self, ctx: CommandContext, patient: dict[str, str], block_id: UUID
    ) -> AccessBlocks:
        return self.change(
            AccessBlocks,
            access_blocks_id_for(patient),
            ctx,
            BLOCKS,
            lambda b: b.lift(ctx, str(block_id)),
        )

    def get_blocks(self, patient: dict[str, str]) -> AccessBlocks | None:
        try:
            return self.load(AccessBlocks, access_blocks_id_for(patient), BLOCKS)
        except NotFound:
            return None
