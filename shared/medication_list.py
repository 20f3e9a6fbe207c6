"""The patient's shared medication list, folded: one pure reading of its recorded changes that
the medications service (its commands' rule check, its reads) and the pathway's read model both
use. Imports nothing of SQL, gRPC or a service.

Clinical time rules the list. Each change is placed at its `occurred_at`; a change reported
late lands in its clinical place. `fold` answers both "the list now" and "the list as of any
past moment": the recorded changes in order of occurred_at, then version.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from shared.domain import command_key
from shared.events import Payload
from shared.events import medications as ev


class EntryState(enum.StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    DISCONTINUED = "DISCONTINUED"


class ReconciliationSource(enum.StrEnum):
    """What a reconciliation (legemiddelsamstemming) checked the list against."""

    PATIENT = "PATIENT"
    NEXT_OF_KIN = "NEXT_OF_KIN"
    GP_RECORD = "GP_RECORD"
    HOSPITAL_RECORD = "HOSPITAL_RECORD"
    MUNICIPAL_CARE_RECORD = "MUNICIPAL_CARE_RECORD"
    PRESCRIPTION_INTERMEDIARY = "PRESCRIPTION_INTERMEDIARY"  # Reseptformidleren
    MULTIDOSE_PHARMACY = "MULTIDOSE_PHARMACY"


@dataclass(frozen=True, slots=True)
class Change:
    """One recorded change of the list, as the fold reads it (from the aggregate's events or
    from the event store; both give the same changes)."""

    event_type: str
    version: int
    occurred_at: datetime
    actor: Mapping[str, str]
    command_id: str
    data: Payload  # the change's public payload (shared.events.medications)

    @property
    def clinical_order(self) -> tuple[datetime, int]:
        return (self.occurred_at, self.version)

    @property
    def command_key(self) -> str:
        """Command ids are unique per calling organisation."""
        return command_key(self.actor["her_id"], self.command_id)


@dataclass(slots=True)
class Entry:
    entry_id: str
    atc_code: str
    name: str
    dose: str
    reason: str | None
    source_her_id: str
    source_kind: str
    prescribed_at: datetime
    prescribed_by: Mapping[str, str]
    last_changed_at: datetime
    last_changed_by: Mapping[str, str]
    state: EntryState = EntryState.ACTIVE
    state_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Reconciliation:
    reconciled_at: datetime
    reconciled_by: Mapping[str, str]
    sources: tuple[str, ...]
    note: str | None


@dataclass(slots=True)
class MedicationListView:
    """The list as it stood at `as_of` (None: now), computed from `version` recorded changes."""

    list_id: UUID
    patient: Mapping[str, str]
    version: int
    as_of: datetime | None = None
    entries: dict[str, Entry] = field(default_factory=dict)
    last_reconciliation: Reconciliation | None = None

    def ordered_entries(self) -> list[Entry]:
        return list(self.entries.values())  # the fold inserts them in prescription order


class IllegalChange(Exception):
    """A change the history cannot take at its clinical place (internal to the rule check)."""

    def __init__(self, version: int, state: str, action: str) -> None:
        super().__init__(f"cannot {action}: the medication is {state}")
        self.version = version
        self.state = state
        self.action = action


#: For each entry change: the action's wording, the states it may happen in, the state after
#: (None: unchanged).
ENTRY_CHANGES: dict[str, tuple[str, frozenset[EntryState], EntryState | None]] = {
    "MedicationDoseChanged": (
        "change the dose",
        frozenset({EntryState.ACTIVE, EntryState.PAUSED}),
        None,
    ),
    "MedicationPaused": ("pause", frozenset({EntryState.ACTIVE}), EntryState.PAUSED),
    "MedicationResumed": ("resume", frozenset({EntryState.PAUSED}), EntryState.ACTIVE),
    "MedicationDiscontinued": (
        "discontinue",
        frozenset({EntryState.ACTIVE, EntryState.PAUSED}),
        EntryState.DISCONTINUED,
    ),
}


def fold(
    list_id: UUID,
    patient: Mapping[str, str],
    changes: Iterable[Change],
    as_of: datetime | None = None,
) -> MedicationListView:
    """The list as it stood at clinical time `as_of` (None: everything recorded).

    Pure: only the changes that occurred at or before `as_of` count, applied in clinical order
    (occurred_at, then version), so a late-reported change lands in its clinical place. Raises
    IllegalChange when a change is impossible where it stands (the rule check relies on it)."""
    recorded = list(changes)
    view = MedicationListView(
        list_id=list_id,
        patient=patient,
        version=max((c.version for c in recorded), default=0),
        as_of=as_of,
    )
    for change in sorted(recorded, key=lambda c: c.clinical_order):
        if as_of is not None and change.occurred_at > as_of:
            break
        _apply(view, change)
    return view


def apply(view: MedicationListView, change: Change) -> None:
    """One more change applied to the list in place, at the end of its clinical order (the
    step of `fold`, for readers that keep the folded list and add changes as they come).
    Raises IllegalChange, leaving the list as it was, when the change is impossible there.
    `view.version` is the caller's to keep (fold counts every recorded change)."""
    _apply(view, change)


def _apply(view: MedicationListView, change: Change) -> None:
    match change.data:
        case ev.MedicationPrescribed() as prescribed:
            view.entries[prescribed.entry_id] = Entry(
                entry_id=prescribed.entry_id,
                atc_code=prescribed.medication.atc_code,
                name=prescribed.medication.name,
                dose=prescribed.dose,
                reason=prescribed.reason,
                source_her_id=prescribed.source_her_id,
                source_kind=prescribed.source_kind,
                prescribed_at=change.occurred_at,
                prescribed_by=change.actor,
                last_changed_at=change.occurred_at,
                last_changed_by=change.actor,
            )
        case ev.MedicationListReconciled(sources=sources, note=note):
            view.last_reconciliation = Reconciliation(
                reconciled_at=change.occurred_at,
                reconciled_by=change.actor,
                sources=tuple(sources),
                note=note,
            )
        case (
            ev.MedicationDoseChanged()
            | ev.MedicationPaused()
            | ev.MedicationResumed()
            | ev.MedicationDiscontinued()
        ) as entry_change:
            action, allowed, after = ENTRY_CHANGES[change.event_type]
            entry = view.entries.get(entry_change.entry_id)
            if entry is None:
                raise IllegalChange(change.version, "not yet prescribed", action)
            if entry.state not in allowed:
                raise IllegalChange(change.version, entry.state.value, action)
            if isinstance(entry_change, ev.MedicationDoseChanged):
                entry.dose = entry_change.dose
            if after is not None:
                entry.state = after
                entry.state_reason = (
                    entry_change.reason
                    if isinstance(entry_change, ev.MedicationPaused | ev.MedicationDiscontinued)
                    else None
                )
            entry.last_changed_at = change.occurred_at
            entry.last_changed_by = change.actor
    # MedicationListStarted only opens the history.


# --- the list now, kept change by change ----------------------------------------------------

#: Where a change stands clinically: its occurred_at, then its version.
Order = tuple[datetime, int]


@dataclass(slots=True)
class EntryClock:
    """The clinical order of the changes that last set an entry's fields: its prescription,
    its dose (prescription or dose change) and its state (prescription, pause, resume or
    discontinuation)."""

    prescribed: Order
    dose: Order
    state: Order

    @property
    def changed(self) -> Order:
        """The entry's clinically latest change: every change sets its dose or its state."""
        return max(self.dose, self.state)


@dataclass(slots=True)
class ListNow:
    """The list now, kept one change at a time in recorded order, whatever the changes'
    clinical order: each field remembers the clinical order of the change that set it, so a
    late-reported change sets only what no clinically later change has set. For recorded
    changes (each possible at its clinical place, as the commands' rule check ensures) it
    equals `fold` of the same changes, at a cost per change of O(1) (O(entries) for a late
    prescription, which takes its place in prescription order), not O(history).

    `latest` is the clinically latest change placed: a change at or after it is "on time", and
    its rule check needs nothing but this (`check`); one before it is late, and only `fold`
    over the whole history can tell whether every later change is still possible."""

    entries: dict[str, Entry] = field(default_factory=dict)
    clocks: dict[str, EntryClock] = field(default_factory=dict)
    last_reconciliation: Reconciliation | None = None
    reconciled: Order | None = None
    latest: Order | None = None

    def on_time(self, occurred_at: datetime) -> bool:
        """Whether a change at `occurred_at` comes after every change placed (clinically)."""
        return self.latest is None or occurred_at >= self.latest[0]

    def check(self, change: Change) -> None:
        """Raise IllegalChange when the on-time `change` is impossible on the list now."""
        if change.event_type not in ENTRY_CHANGES:
            return
        action, allowed, _ = ENTRY_CHANGES[change.event_type]
        entry = self.entries.get(change.data.entry_id)  # type: ignore[attr-defined]
        if entry is None:
            raise IllegalChange(change.version, "not yet prescribed", action)
        if entry.state not in allowed:
            raise IllegalChange(change.version, entry.state.value, action)

    def place(self, change: Change) -> None:
        """Take a recorded change into the list now, at its clinical place."""
        order = change.clinical_order
        match change.data:
            case ev.MedicationPrescribed() as prescribed:
                entry_id = prescribed.entry_id
                view = MedicationListView(list_id=UUID(int=0), patient={}, version=change.version)
                _apply(view, change)
                self.entries[entry_id] = view.entries[entry_id]
                self.clocks[entry_id] = EntryClock(order, order, order)
                if self.latest is not None and order < self.latest:  # late: prescription order
                    ordered = sorted(self.clocks, key=lambda e: self.clocks[e].prescribed)
                    self.entries = {e: self.entries[e] for e in ordered}
            case ev.MedicationListReconciled(sources=sources, note=note):
                if self.reconciled is None or order > self.reconciled:
                    self.reconciled = order
                    self.last_reconciliation = Reconciliation(
                        reconciled_at=change.occurred_at,
                        reconciled_by=change.actor,
                        sources=tuple(sources),
                        note=note,
                    )
            case (
                ev.MedicationDoseChanged()
                | ev.MedicationPaused()
                | ev.MedicationResumed()
                | ev.MedicationDiscontinued()
            ) as entry_change:
                entry = self.entries[entry_change.entry_id]
                clock = self.clocks[entry_change.entry_id]
                if order > clock.changed:
                    entry.last_changed_at = change.occurred_at
                    entry.last_changed_by = change.actor
                if isinstance(entry_change, ev.MedicationDoseChanged):
                    if order > clock.dose:
                        clock.dose = order
                        entry.dose = entry_change.dose
                elif order > clock.state:
                    clock.state = order
                    entry.state = ENTRY_CHANGES[change.event_type][2] or entry.state
                    entry.state_reason = (
                        entry_change.reason
                        if isinstance(entry_change, ev.MedicationPaused | ev.MedicationDiscontinued)
                        else None
                    )
        # MedicationListStarted only opens the history: it places nothing.
        if change.event_type != "MedicationListStarted" and (
            self.latest is None or order > self.latest
        ):
            self.latest = order

    def view(
        self, list_id: UUID, patient: Mapping[str, str], version: int, as_of: datetime | None = None
    ) -> MedicationListView:
        """The list now as a view (copies: the caller may keep it while the list changes)."""
        return MedicationListView(
            list_id=list_id,
            patient=patient,
            version=version,
            as_of=as_of,
            entries={k: dataclasses.replace(e) for k, e in self.entries.items()},
            last_reconciliation=self.last_reconciliation,
        )
