"""The patient's shared medication list (PLL-style): one list per patient, "as agreed between
doctor and patient", kept together by GP offices, hospitals and municipal doctors.

Who may act is the access policy's business (docs/access.md): a doctor of any organisation
kind caring for the patient now — GP office, hospital, or municipality, because municipal doctors
(sykehjemslege, legevakt) prescribe too. The prescribing organisation is kept on each entry as
its source.

Clinical time rules the list. Each change is placed at its `occurred_at`; a change reported
late lands in its clinical place. `fold` is the one reading of the history: a pure function
over the recorded changes (in order of occurred_at, then version) that answers both "the list
now" and "the list as of any past moment". Commands check their rule with the same fold, with
the proposed change inserted: it must be possible at its clinical time and must leave every
later recorded change possible.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from services.medications.contract import CONTRACT
from shared.domain import CarepathAggregate, CommandContext, command_key
from shared.errors import InvalidArgument, InvalidTransition, NotFound
from shared.events import Payload, current_payload
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


#: ATC at substance level (WHO ATC/DDD index): main group, 2 digits, 2 letters, 2 digits.
ATC_CODE = re.compile(r"[ABCDGHJLMNPRSV][0-9]{2}[A-Z]{2}[0-9]{2}")


def medication_list_id(patient: Mapping[str, str]) -> UUID:
    """One list per patient: its id derives from the patient identifier."""
    return uuid5(NAMESPACE_URL, f"carepath:medication-list:{patient['system']}|{patient['value']}")


def entry_id_for(list_id: UUID, her_id: str, command_id: str) -> str:
    """The same prescription command from the same organisation always names the same entry
    (command ids are unique per calling organisation, so the HER-id is part of the name)."""
    return str(uuid5(list_id, command_key(her_id, command_id)))


def parse_atc_code(value: str) -> str:
    code = value.strip().upper()
    if not ATC_CODE.fullmatch(code):
        raise InvalidArgument(
            "medication.atc_code", "must be an ATC code at substance level, like A10BA02"
        )
    return code


def parse_sources(sources: Iterable[ReconciliationSource]) -> list[str]:
    """The sources consulted, each once, in the order given."""
    unique = list(dict.fromkeys(ReconciliationSource(s).value for s in sources))
    if not unique:
        raise InvalidArgument("sources", "at least one source consulted is required")
    return unique


# --- the history and its fold -----------------------------------------------------------------


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

    @classmethod
    def of(cls, event: Any) -> Change:
        """A stored or just-triggered MedicationList event as a change."""
        meta: dict[str, Any] = event.meta
        return cls(
            event_type=type(event).__name__,
            version=int(event.originator_version),
            occurred_at=datetime.fromisoformat(meta["occurred_at"]),
            actor=meta["actor"],
            command_id=meta["command_id"],
            data=CONTRACT[type(event).__name__](event),
        )

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
_ENTRY_CHANGES: dict[str, tuple[str, frozenset[EntryState], EntryState | None]] = {
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
            action, allowed, after = _ENTRY_CHANGES[change.event_type]
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


# --- the aggregate ----------------------------------------------------------------------------


class MedicationList(CarepathAggregate):
    """The patient's medication list. Commands check their rule with `fold` and trigger a
    past-tense event; applying an event only records it, so replay never re-checks rules."""

    class Event(CarepathAggregate.Event):
        meta: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate._recorded(self)

    class MedicationListStarted(Event, CarepathAggregate.Created):
        pass

    class MedicationPrescribed(Event):
        entry_id: str
        medication: dict[str, str]
        dose: str
        reason: str | None
        source_her_id: str
        source_kind: str

    class MedicationDoseChanged(Event):
        entry_id: str
        dose: str
        reason: str | None

    class MedicationPaused(Event):
        entry_id: str
        reason: str

    class MedicationResumed(Event):
        entry_id: str

    class MedicationDiscontinued(Event):
        entry_id: str
        reason: str

    class MedicationListReconciled(Event):
        sources: list[str]
        note: str | None

    @classmethod
    def start(cls, ctx: CommandContext, patient: Mapping[str, str]) -> MedicationList:
        """Open the patient's list; saved together with the command that needed it."""
        return cls._create(
            cls.MedicationListStarted, id=medication_list_id(patient), meta=ctx.meta(dict(patient))
        )

    def _recorded(self, event: Event) -> None:
        if isinstance(event, MedicationList.MedicationListStarted):
            self.patient: dict[str, str] = event.meta["patient"]
            self.changes: list[Change] = []
        self.changes.append(Change.of(event))
        self._handled(event.meta)

    # --- reading ---------------------------------------------------------------------------

    def view(self, as_of: datetime | None = None, version: int | None = None) -> MedicationListView:
        changes = [c for c in self.changes if version is None or c.version <= version]
        return fold(self.id, self.patient, changes, as_of)

    def result_of(self, ctx: CommandContext) -> MedicationListView:
        """The list as it stood right after the command (its last event, when it had two)."""
        key = command_key(ctx.actor.her_id, ctx.command_id)
        version = max(c.version for c in self.changes if c.command_key == key)
        return self.view(version=version)

    # --- commands --------------------------------------------------------------------------

    def prescribe(
        self, ctx: CommandContext, atc_code: str, name: str, dose: str, reason: str | None
    ) -> str:
        """Add a medication as ACTIVE; returns the new entry's id."""
        entry_id = entry_id_for(self.id, ctx.actor.her_id, ctx.command_id)
        self.trigger_event(
            self.MedicationPrescribed,
            meta=ctx.meta(self.patient),
            entry_id=entry_id,
            medication={"atc_code": parse_atc_code(atc_code), "name": name},
            dose=dose,
            reason=reason,
            source_her_id=ctx.actor.her_id,
            source_kind=ctx.actor.org_kind.value,
        )
        return entry_id

    def change_dose(
        self, ctx: CommandContext, entry_id: str, dose: str, reason: str | None
    ) -> None:
        self._check_entry(entry_id, ctx)
        if self.view(as_of=ctx.occurred_at).entries[entry_id].dose == dose:
            raise InvalidArgument("dose", "is the dose already in force")
        self._propose(ctx, self.MedicationDoseChanged, entry_id=entry_id, dose=dose, reason=reason)

    def pause(self, ctx: CommandContext, entry_id: str, reason: str) -> None:
        self._check_entry(entry_id, ctx)
        self._propose(ctx, self.MedicationPaused, entry_id=entry_id, reason=reason)

    def resume(self, ctx: CommandContext, entry_id: str) -> None:
        self._check_entry(entry_id, ctx)
        self._propose(ctx, self.MedicationResumed, entry_id=entry_id)

    def discontinue(self, ctx: CommandContext, entry_id: str, reason: str) -> None:
        self._check_entry(entry_id, ctx)
        self._propose(ctx, self.MedicationDiscontinued, entry_id=entry_id, reason=reason)

    def reconcile(
        self, ctx: CommandContext, sources: Iterable[ReconciliationSource], note: str | None
    ) -> None:
        self.trigger_event(
            self.MedicationListReconciled,
            meta=ctx.meta(self.patient),
            sources=parse_sources(sources),
            note=note,
        )

    # --- rules -----------------------------------------------------------------------------

    def _check_entry(self, entry_id: str, ctx: CommandContext) -> None:
        """The entry must be on the list and prescribed by the command's clinical time."""
        entry = self.view().entries.get(entry_id)
        if entry is None:
            raise NotFound("medication entry not found on the patient's list")
        if ctx.occurred_at < entry.prescribed_at:
            raise InvalidArgument("metadata.occurred_at", "is before the medication was prescribed")

    def _propose(self, ctx: CommandContext, event_class: type[Event], **data: Any) -> None:
        """Trigger the change if the history can take it at its clinical place."""
        meta = ctx.meta(self.patient)
        proposed = Change(
            event_type=event_class.__name__,
            version=self.version + 1,
            occurred_at=ctx.occurred_at,
            actor=meta["actor"],
            command_id=ctx.command_id,
            data=current_payload("medications", event_class.__name__)(**data),
        )
        try:
            fold(self.id, self.patient, [*self.changes, proposed])
        except IllegalChange as exc:
            action = _ENTRY_CHANGES[event_class.__name__][0]
            if exc.version == proposed.version:
                raise InvalidTransition("the medication", exc.state, action) from None
            raise InvalidTransition(
                "the medication",
                exc.state,
                f"{action} at that time, since a later recorded change ({exc.action}) "
                "would find it",
            ) from None
        self.trigger_event(event_class, meta=meta, **data)
