"""The patient's shared medication list (PLL-style): one list per patient, "as agreed between
doctor and patient", kept together by GP offices, hospitals and municipal doctors.

Who may act is the access policy's business (docs/access.md): a doctor of any organisation
kind caring for the patient now — GP office, hospital, or municipality, because municipal doctors
(sykehjemslege, legevakt) prescribe too. The prescribing organisation is kept on each entry as
its source.

Clinical time rules the list. Each change is placed at its `occurred_at`; a change reported
late lands in its clinical place. `fold` (shared.medication_list) is the one reading of the
history: a pure function over the recorded changes (in order of occurred_at, then version)
that answers both "the list now" and "the list as of any past moment"; the aggregate keeps the
list now change by change (`ListNow`, equal to the fold). A change must be possible at its
clinical time and must leave every later recorded change possible: an on-time change is checked
on the list now, a late-reported one with `fold` over the whole history, read from the store.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from services.medications.contract import CONTRACT
from shared.domain import CarepathAggregate, CommandContext, command_key, handled_key
from shared.errors import InvalidArgument, InvalidTransition, NotFound
from shared.events import current_payload
from shared.medication_list import (
    ENTRY_CHANGES,
    Change,
    Entry,
    EntryState,
    IllegalChange,
    ListNow,
    MedicationListView,
    Reconciliation,
    ReconciliationSource,
    fold,
)

__all__ = [
    "Change",
    "Entry",
    "EntryState",
    "IllegalChange",
    "ListNow",
    "MedicationListView",
    "Reconciliation",
    "ReconciliationSource",
    "fold",
]


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


#: The recorded changes of the list, read from the event store when a command needs its whole
#: history (a late-reported change; shared.medication_list.ListNow).
Recorded = Callable[[], Iterable[Change]]


#: Characters of a command's token (URL-safe base64: 36 bits of the key's BLAKE2b hash).
TOKEN_WIDTH = 6
#: Tokens in one page of `MedicationList.handled`: appending copies one page, not them all.
TOKENS_PER_PAGE = 512


def handled_token(key: str) -> str:
    """A command key as TOKEN_WIDTH characters: the list keeps one per command it handled,
    in pages of a few kilobytes (`MedicationList.handled`)."""
    digest = hashlib.blake2b(key.encode(), digest_size=6).digest()
    return base64.urlsafe_b64encode(digest).decode()[:TOKEN_WIDTH]


def add_token(pages: list[str], token: str) -> None:
    """Add a command's token to the pages of handled commands (once: a command's events come
    one after another)."""
    if pages and pages[-1].endswith(token):
        return
    if not pages or len(pages[-1]) >= TOKENS_PER_PAGE * TOKEN_WIDTH:
        pages.append(token)
    else:
        pages[-1] += token


def has_token(pages: list[str], token: str) -> bool:
    """Whether a page holds `token` at a token's place (not across two tokens)."""
    for page in pages:
        found = page.find(token)
        while found != -1:
            if found % TOKEN_WIDTH == 0:
                return True
            found = page.find(token, found + 1)
    return False


class MedicationList(CarepathAggregate):
    """The patient's medication list. Commands check their rule and trigger a past-tense
    event; applying an event only records it, so replay never re-checks rules.

    The aggregate keeps the list now (`now`, shared.medication_list.ListNow), not its history,
    so a command costs the same on a list of 30 changes and of 10,000 (loaded from its newest
    snapshot and the events after it). A change at or after the clinically latest change is
    checked against the list now. A late-reported change (clinical time before the latest)
    must leave every later recorded change possible, which only the whole history can tell:
    such a command reads the list's recorded changes from the event store (`recorded`), so a
    late report costs a read of the history. Past views (`as_of` before the latest change, a
    past version) are the application's, from the store.

    Repeated commands: `handled` holds one 6-character token per command handled (36 bits of
    its key's hash, `handled_token`) in pages of TOKENS_PER_PAGE tokens, so the snapshot keeps
    6 bytes a command in a few strings (60 KB at 10,000 commands, 20 values to read and
    write), not every command's key and version; which version a repeated command reached is
    looked up in the store, on the retry only (and a token that matched another command's
    then finds none, and the command runs).

    class_version 2: version 1 kept every change (`changes`) and the command keys as a set;
    `upcast_v1_v2` turns a snapshot of that shape into this one."""

    class_version = 2

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

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A snapshot of version 1 (every change, and the command keys as a set) as version 2."""
        changes = sorted(state.pop("changes"), key=lambda c: c.version)
        now = ListNow()
        for change in changes:
            now.place(change)
        state["now"] = now
        state.pop("command_keys", None)  # the changes' own keys, in the order they came
        state["handled"] = []
        for change in changes:
            add_token(state["handled"], handled_token(change.command_key))

    @classmethod
    def start(cls, ctx: CommandContext, patient: Mapping[str, str]) -> MedicationList:
        """Open the patient's list; saved together with the command that needed it."""
        return cls._create(
            cls.MedicationListStarted, id=medication_list_id(patient), meta=ctx.meta(dict(patient))
        )

    def _recorded(self, event: Event) -> None:
        if isinstance(event, MedicationList.MedicationListStarted):
            self.patient: dict[str, str] = event.meta["patient"]
            self.now = ListNow()
            self.handled: list[str] = []
        self.now.place(change_of(event))
        self._handled(event.meta)

    def _handled(self, meta: dict[str, Any]) -> None:
        add_token(self.handled, handled_token(handled_key(meta)))

    def has_handled(self, ctx: CommandContext) -> bool:
        """Whether the command may have been handled: a token of another key may match
        (1 in 7 million per command on a list of 10,000 commands), which costs only the
        store's look-up of the command's result, which then finds none
        (MedicationsApplication): a token needs to tell commands apart almost always, never
        always, so it is short."""
        return has_token(self.handled, handled_token(command_key(ctx.actor.her_id, ctx.command_id)))

    # --- reading ---------------------------------------------------------------------------

    def view(self, as_of: datetime | None = None) -> MedicationListView:
        """The list now, or as of clinical time `as_of` when that is at or after the latest
        change (the same list). An earlier `as_of` is a past list: `fold` of the recorded
        changes (MedicationsApplication.get_list)."""
        if as_of is not None and not self.now.on_time(as_of):
            raise ValueError("a past list is folded from the recorded changes")
        return self.now.view(self.id, self.patient, self.version, as_of)

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
        self,
        ctx: CommandContext,
        entry_id: str,
        dose: str,
        reason: str | None,
        recorded: Recorded | None = None,
    ) -> None:
        self._check_entry(entry_id, ctx)
        if self.now.on_time(ctx.occurred_at):
            in_force = self.now.entries[entry_id].dose
        else:
            then = fold(self.id, self.patient, self._history(recorded), ctx.occurred_at)
            in_force = then.entries[entry_id].dose
        if in_force == dose:
            raise InvalidArgument("dose", "is the dose already in force")
        self._propose(
            ctx, recorded, self.MedicationDoseChanged, entry_id=entry_id, dose=dose, reason=reason
        )

    def pause(
        self, ctx: CommandContext, entry_id: str, reason: str, recorded: Recorded | None = None
    ) -> None:
        self._check_entry(entry_id, ctx)
        self._propose(ctx, recorded, self.MedicationPaused, entry_id=entry_id, reason=reason)

    def resume(self, ctx: CommandContext, entry_id: str, recorded: Recorded | None = None) -> None:
        self._check_entry(entry_id, ctx)
        self._propose(ctx, recorded, self.MedicationResumed, entry_id=entry_id)

    def discontinue(
        self, ctx: CommandContext, entry_id: str, reason: str, recorded: Recorded | None = None
    ) -> None:
        self._check_entry(entry_id, ctx)
        self._propose(ctx, recorded, self.MedicationDiscontinued, entry_id=entry_id, reason=reason)

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
        entry = self.now.entries.get(entry_id)
        if entry is None:
            raise NotFound("medication entry not found on the patient's list")
        if ctx.occurred_at < entry.prescribed_at:
            raise InvalidArgument("metadata.occurred_at", "is before the medication was prescribed")

    def _history(self, recorded: Recorded | None) -> list[Change]:
        """Every change of the list: the stored ones (`recorded`, up to the version this
        aggregate was loaded at) and those of this command not yet saved."""
        if recorded is None:
            raise TypeError("a late-reported change needs the list's recorded changes")
        pending = [change_of(e) for e in self.pending_events]
        stored_version = self.version - len(pending)
        return [*(c for c in recorded() if c.version <= stored_version), *pending]

    def _propose(
        self,
        ctx: CommandContext,
        recorded: Recorded | None,
        event_class: type[Event],
        **data: Any,
    ) -> None:
        """Trigger the change if the list can take it at its clinical place: on the list now
        when it is on time; otherwise in the whole history, where it must leave every later
        recorded change possible."""
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
            if self.now.on_time(proposed.occurred_at):
                self.now.check(proposed)
            else:
                fold(self.id, self.patient, [*self._history(recorded), proposed])
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
