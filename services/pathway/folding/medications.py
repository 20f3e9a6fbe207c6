"""The patient's shared medication list as the pathway keeps it (pure, no I/O): the list now,
and one version of an entry per change, valid from the change's clinical time — so "the list
at clinical time T" is, for each entry, its latest version at or before T, read from stored
rows without folding the history again.

The list is folded by the one fold the medications service uses (shared.medication_list),
one change at a time in clinical order. A change the list cannot take where it stands (a dose
change whose prescription has not arrived yet) is left out; the prescription sorts before it
when it comes, so the projector folds the patient again and the change lands in its place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from shared.events import Envelope
from shared.events import medications as med
from shared.medication_list import (
    Change,
    Entry,
    IllegalChange,
    MedicationListView,
    Reconciliation,
    apply,
)
from shared.medication_list import fold as fold_list

SOURCE = "medications"


def change_of(envelope: Envelope) -> Change:
    """A medications event as the list's fold reads it."""
    return Change(
        event_type=envelope.event_type,
        version=envelope.aggregate_version,
        occurred_at=envelope.occurred,
        actor=envelope.actor,
        command_id=envelope.causation_id,
        data=envelope.data,
    )


def medication_list(
    history: Sequence[Envelope], clinical_at: datetime | None
) -> MedicationListView | None:
    """The list at clinical time `clinical_at` (None: everything known) from the patient's
    events, by the shared fold (for answers that replay the history: `as_of`)."""
    envelopes = [env for env in history if env.source == SOURCE]
    if not envelopes:
        return None
    first = envelopes[0]
    changes = [change_of(env) for env in envelopes]
    return fold_list(UUID(first.aggregate_id), first.patient, changes, clinical_at)


@dataclass(frozen=True)
class EntryVersion:
    """An entry as it stood from `valid_from` (clinical time) until its next version."""

    entry_id: str
    seq: int  # the version of the change that made it
    valid_from: str
    entry: Entry
    #: Its place on the list when this version first put it there (else None).
    position: int | None = None


@dataclass(frozen=True)
class ReconciliationVersion:
    seq: int
    valid_from: str
    reconciliation: Reconciliation


@dataclass
class MedicationProjection:
    """The list now (as the fold keeps it between batches) and the versions made since the
    projection was last written (`pending`, taken by the row mapping)."""

    view: MedicationListView
    pending: list[EntryVersion | ReconciliationVersion] = field(default_factory=list)

    @classmethod
    def start(cls, envelope: Envelope) -> MedicationProjection:
        return cls(MedicationListView(UUID(envelope.aggregate_id), envelope.patient, 0))

    def add(self, envelope: Envelope, valid_from: str) -> None:
        """One more change, at the end of the list's clinical order."""
        change = change_of(envelope)
        known = set(self.view.entries)
        self.view.version = max(self.view.version, change.version)
        try:
            apply(self.view, change)
        except IllegalChange:
            return  # not applicable where it stands yet (see the module's docstring)
        match change.data:
            case med.MedicationListReconciled():
                rec = self.view.last_reconciliation
                assert rec is not None
                self.pending.append(ReconciliationVersion(change.version, valid_from, rec))
            case (
                med.MedicationPrescribed()
                | med.MedicationDoseChanged()
                | med.MedicationPaused()
                | med.MedicationResumed()
                | med.MedicationDiscontinued()
            ) as entry_change:
                entry_id = entry_change.entry_id
                new = entry_id not in known
                snapshot = dataclasses.replace(self.view.entries[entry_id])
                position = list(self.view.entries).index(entry_id) if new else None
                self.pending.append(
                    EntryVersion(entry_id, change.version, valid_from, snapshot, position)
                )

    def take(self) -> list[EntryVersion | ReconciliationVersion]:
        """The versions made since the last take (to be stored)."""
        pending, self.pending = self.pending, []
        return pending
