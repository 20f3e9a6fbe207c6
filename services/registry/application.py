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
    OrgnrHolder,
    Registration,
    RegistryKind,
    access_blocks_id_for,
    organisation_id_for,
    orgnr_holder_id_for,
    registration_id_for,
)
from shared.domain import CarepathAggregate, CommandContext
from shared.errors import NotFound
from shared.store import CarepathApplication

REGISTRATION = "registration"
ORGANISATION = "organisation"
ORGNR = "organisation number"
BLOCKS = "blocks"


class RegistryApplication(CarepathApplication):
    name = "registry"
    contract = CONTRACT
    internal_event_types = frozenset(
        {"RegistrationStarted", "AccessBlocksStarted", "OrgnrTaken", "OrgnrGiven", "OrgnrReleased"}
    )

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

    def record_death(self, ctx: CommandContext, patient: dict[str, str]) -> Registration:
        """The patient died (a patient the registers have not named yet gets a registration
        holding the death)."""
        return self._registration(ctx, patient, lambda r: r.record_death(ctx))

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
        orgnr: str | None = None,
    ) -> Organisation:
        """Record the organisation's entry as it is now. Its organisation number's holder (and
        the holder of the number it had before) is saved in the same transaction, so two
        organisations never hold one number: ALREADY_EXISTS naming `orgnr` when another does."""

        def attempt() -> tuple[Organisation, tuple[CarepathAggregate, ...]]:
            try:
                organisation = self.load(Organisation, organisation_id_for(her_id), ORGANISATION)
            except NotFound:
                organisation = Organisation.register(ctx, her_id, kind, name, parent_her_id, orgnr)
                before = None
            else:
                if organisation.has_handled(ctx):
                    first = self.first_result(
                        Organisation, organisation_id_for(her_id), ctx, ORGANISATION
                    )
                    return first, ()
                before = organisation.orgnr
                organisation.change(ctx, kind, name, parent_her_id, orgnr)
            changed: list[CarepathAggregate] = [organisation]
            if orgnr is not None and orgnr != before:
                changed.append(self._holder_given(ctx, orgnr, her_id))
            if before is not None and before != orgnr:
                holder = self._holder(before)
                if holder is not None:
                    holder.release(ctx, her_id)
                    changed.append(holder)
            return organisation, tuple(changed)

        return self.transact(attempt, ORGANISATION)

    def _holder(self, orgnr: str) -> OrgnrHolder | None:
        try:
            return self.load(OrgnrHolder, orgnr_holder_id_for(orgnr), ORGNR)
        except NotFound:
            return None

    def _holder_given(self, ctx: CommandContext, orgnr: str, her_id: str) -> OrgnrHolder:
        holder = self._holder(orgnr)
        if holder is None:
            return OrgnrHolder.take(ctx, orgnr, her_id)
        holder.give_to(ctx, her_id)  # AlreadyExists while another organisation holds it
        return holder

    def orgnr_holder(self, orgnr: str) -> str | None:
        """The HER-id holding an organisation number now (None: nobody)."""
        holder = self._holder(orgnr)
        return holder.her_id if holder is not None else None

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
