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
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from services.medications.contract import CONTRACT
from shared.domain import CarepathAggregate, CommandContext, command_key
from shared.errors import InvalidArgument, InvalidTransition, NotFound
from shared.events import current_payload
from shared.medication_list import (
    ENTRY_CHANGES,
    Change,
    Entry,
    EntryState,
    IllegalChange,
    MedicationListView,
    Reconciliation,
    fold,
)

__all__ = [
    "Change",
    "Entry",
    "EntryState",
    "IllegalChange",
    "MedicationListView",
    "Reconciliation",
    "fold",
]


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


# --- the history -------------------------------------------------------------------------------


def change_of(event: Any) -> Change:
    """A stored or just-triggered MedicationList event as a change of the list."""
    meta: dict[str, Any] = event.meta
    return Change(
        event_type=type(event).__name__,
        version=int(event.originator_version),
        occurred_at=datetime.fromisoformat(meta["occurred_at"]),
        actor=meta["actor"],
        command_id=meta["command_id"],
        data=CONTRACT[type(event).__name__](event),
    )


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
        self.changes.append(change_of(event))
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
            action = ENTRY_CHANGES[event_class.__name__][0]
            if exc.version == proposed.version:
                raise InvalidTransition("the medication", exc.state, action) from None
            raise InvalidTransition(
                "the medication",
                exc.state,
                f"{action} at that time, since a later recorded change ({exc.action}) "
                "would find it",
            ) from None
        self.trigger_event(event_class, meta=meta, **data)
