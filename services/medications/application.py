"""Medication list commands and queries: load (or start) → change → save, idempotent on the
calling organisation's command_id; queries fold the stored events in clinical order."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from services.medications.contract import CONTRACT
from services.medications.domain import (
    MedicationList,
    MedicationListView,
    ReconciliationSource,
    change_of,
    fold,
    medication_list_id,
)
from shared.domain import CommandContext
from shared.errors import Conflict, NotFound
from shared.store import CONFLICT_RETRIES, CarepathApplication

WHAT = "medication list"


class MedicationsApplication(CarepathApplication):
    name = "medications"
    contract = CONTRACT
    #: A home-care patient's list takes years of changes; every command loads it.
    snapshotted = (MedicationList,)

    def prescribe(
        self,
        ctx: CommandContext,
        patient: Mapping[str, str],
        atc_code: str,
        name: str,
        dose: str,
        reason: str | None,
    ) -> MedicationListView:
        """The first prescription for a patient also starts the patient's list."""
        return self._command(
            ctx, patient, lambda m: m.prescribe(ctx, atc_code, name, dose, reason), start=True
        )

    def change_dose(
        self,
        ctx: CommandContext,
        patient: Mapping[str, str],
        entry_id: UUID,
        dose: str,
        reason: str | None,
    ) -> MedicationListView:
        return self._command(
            ctx, patient, lambda m: m.change_dose(ctx, str(entry_id), dose, reason)
        )

    def pause(
        self, ctx: CommandContext, patient: Mapping[str, str], entry_id: UUID, reason: str
    ) -> MedicationListView:
        return self._command(ctx, patient, lambda m: m.pause(ctx, str(entry_id), reason))

    def resume(
        self, ctx: CommandContext, patient: Mapping[str, str], entry_id: UUID
    ) -> MedicationListView:
        return self._command(ctx, patient, lambda m: m.resume(ctx, str(entry_id)))

    def discontinue(
        self, ctx: CommandContext, patient: Mapping[str, str], entry_id: UUID, reason: str
    ) -> MedicationListView:
        return self._command(ctx, patient, lambda m: m.discontinue(ctx, str(entry_id), reason))

    def reconcile(
        self,
        ctx: CommandContext,
        patient: Mapping[str, str],
        sources: Iterable[ReconciliationSource],
        note: str | None,
    ) -> MedicationListView:
        """A reconciliation may be the first thing recorded (it may find no medications)."""
        sources = list(sources)
        return self._command(ctx, patient, lambda m: m.reconcile(ctx, sources, note), start=True)

    def get_list(
        self, patient: Mapping[str, str], as_of: datetime | None = None
    ) -> MedicationListView:
        """The list now, or as it stood at clinical time `as_of`: a fold of the stored events,
        so late-reported changes count from their clinical time on."""
        list_id = medication_list_id(patient)
        changes = [change_of(e) for e in self.repository.event_store.get(list_id)]
        if not changes:
            raise NotFound(f"{WHAT} not found")
        return fold(list_id, patient, changes, as_of)

    def _command(
        self,
        ctx: CommandContext,
        patient: Mapping[str, str],
        command: Callable[[MedicationList], object],
        start: bool = False,
    ) -> MedicationListView:
        """Load the patient's list (or start it, when `start`), run the command, save.

        A repeated command answers with its first result; a concurrent change (including
        another first command starting the same list) re-runs the rules on the saved list."""
        list_id = medication_list_id(patient)
        for _ in range(CONFLICT_RETRIES):
            try:
                medication_list: MedicationList = self.repository.get(list_id)
            except AggregateNotFoundError:
                if not start:
                    raise NotFound(f"{WHAT} not found") from None
                medication_list = MedicationList.start(ctx, patient)
            else:
                if medication_list.has_handled(ctx):
                    return medication_list.result_of(ctx)
            command(medication_list)
            try:
                self.save_command(medication_list)
            except IntegrityError:
                continue
            return medication_list.view()
        raise Conflict(f"{WHAT} changed concurrently; retry the command")
