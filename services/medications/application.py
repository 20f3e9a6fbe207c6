"""Medication list commands and queries: load (or start) → change → save
(`CarepathApplication.transact`), idempotent on the calling organisation's command_id; the list
now comes from the aggregate (its newest snapshot and the events after it), a past list from a
fold of the stored events in clinical order."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from uuid import UUID

from services.medications.contract import CONTRACT
from services.medications.domain import (
    MedicationList,
    MedicationListView,
    ReconciliationSource,
    Recorded,
    change_of,
    fold,
    medication_list_id,
)
from shared.domain import CarepathAggregate, CommandContext, command_key
from shared.errors import NotFound
from shared.store import CarepathApplication

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
            ctx, patient, lambda m, _: m.prescribe(ctx, atc_code, name, dose, reason), start=True
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
            ctx, patient, lambda m, rec: m.change_dose(ctx, str(entry_id), dose, reason, rec)
        )

    def pause(
        self, ctx: CommandContext, patient: Mapping[str, str], entry_id: UUID, reason: str
    ) -> MedicationListView:
        return self._command(ctx, patient, lambda m, rec: m.pause(ctx, str(entry_id), reason, rec))

    def resume(
        self, ctx: CommandContext, patient: Mapping[str, str], entry_id: UUID
    ) -> MedicationListView:
        return self._command(ctx, patient, lambda m, rec: m.resume(ctx, str(entry_id), rec))

    def discontinue(
        self, ctx: CommandContext, patient: Mapping[str, str], entry_id: UUID, reason: str
    ) -> MedicationListView:
        return self._command(
            ctx, patient, lambda m, rec: m.discontinue(ctx, str(entry_id), reason, rec)
        )

    def reconcile(
        self,
        ctx: CommandContext,
        patient: Mapping[str, str],
        sources: Iterable[ReconciliationSource],
        note: str | None,
    ) -> MedicationListView:
        """A reconciliation may be the first thing recorded (it may find no medications)."""
        sources = list(sources)
        return self._command(ctx, patient, lambda m, _: m.reconcile(ctx, sources, note), start=True)

    def get_list(
        self, patient: Mapping[str, str], as_of: datetime | None = None
    ) -> MedicationListView:
        """The list now (the aggregate's, from its newest snapshot on), or as it stood at
        clinical time `as_of`: before the latest change that is a fold of the stored events,
        so late-reported changes count from their clinical time on."""
        list_id = medication_list_id(patient)
        medication_list = self.load(MedicationList, list_id, WHAT)
        if as_of is None or medication_list.now.on_time(as_of):
            return medication_list.view(as_of)
        return fold(list_id, patient, self._recorded(list_id)(), as_of)

    def _recorded(self, list_id: UUID) -> Recorded:
        """The list's stored changes, read when called."""
        return lambda: [change_of(e) for e in self.repository.event_store.get(list_id)]

    def _first_result(
        self, list_id: UUID, patient: Mapping[str, str], ctx: CommandContext
    ) -> MedicationListView | None:
        """The list as it stood right after the command's last event (None: the command is
        not recorded, its token in `handled` was another key's)."""
        key = command_key(ctx.actor.her_id, ctx.command_id)
        changes = list(self._recorded(list_id)())
        versions = [c.version for c in changes if c.command_key == key]
        if not versions:
            return None
        return fold(list_id, patient, [c for c in changes if c.version <= max(versions)])

    def _command(
        self,
        ctx: CommandContext,
        patient: Mapping[str, str],
        command: Callable[[MedicationList, Recorded], object],
        start: bool = False,
    ) -> MedicationListView:
        """Load the patient's list (or start it, when `start`), run the command, save.

        A repeated command answers with its first result; a concurrent change (including
        another first command starting the same list) re-runs the rules on the saved list."""
        list_id = medication_list_id(patient)

        def attempt() -> tuple[MedicationListView, tuple[CarepathAggregate, ...]]:
            try:
                medication_list = self.load(MedicationList, list_id, WHAT)
            except NotFound:
                if not start:
                    raise
                medication_list = MedicationList.start(ctx, patient)
            else:
                if medication_list.has_handled(ctx):
                    first = self._first_result(list_id, patient, ctx)
                    if first is not None:
                        return first, ()
            command(medication_list, self._recorded(list_id))
            return medication_list.view(), (medication_list,)

        return self.transact(attempt, WHAT)
