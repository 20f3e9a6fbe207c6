"""The deterministic fold of one patient's events: the state the projector keeps between
batches, and the pathway (referrals, stays, discharges, tasks, location) derived from it.

Pure, no I/O. The same set of events gives the same state whatever order or how many times they
arrived: the timeline is sorted by (clinical time, source, aggregate, version), each referral,
stay and discharge is folded in its own version order, register events in the order they were
recorded. `replay` folds a whole history; `PatientState.add` adds a batch of new events on top
of a stored state when that gives the same result — every new clinical event sorts after the
last one applied and after its aggregate's applied versions — and raises NotInOrder otherwise,
so the caller replays the patient's history instead (correctness first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from services.pathway.folding.correspondence import step_correspondence
from services.pathway.folding.discharges import at_death, step_discharge
from services.pathway.folding.location import location
from services.pathway.folding.medications import SOURCE as MEDICATIONS
from services.pathway.folding.medications import MedicationProjection
from services.pathway.folding.model import (
    UNKNOWN,
    CorrespondenceView,
    Death,
    DischargeView,
    Location,
    MunicipalServiceView,
    PloMessage,
    ReferralView,
    StayView,
    Task,
)
from services.pathway.folding.municipal import step_service
from services.pathway.folding.referrals import step_referral
from services.pathway.folding.registers import (
    SOURCE as REGISTRY,
)
from services.pathway.folding.registers import (
    BlockChange,
    RegisterFacts,
    Registration,
    active_blocks,
    block_change,
    facts_of,
    registration,
)
from services.pathway.folding.stays import step_stay
from services.pathway.folding.summaries import Summariser
from services.pathway.folding.tasks import (
    correspondence_tasks,
    discharge_tasks,
    reconciliation_tasks,
    referral_tasks,
    service_tasks,
    stay_tasks,
)
from shared.events import Envelope
from shared.events import registry as reg
from shared.times import utc_iso

TimelineKey = tuple[str, str, str, int]
#: One entry of the timeline: the event and its one-line summary.
TimelineEntry = tuple[Envelope, str]


def timeline_order(envelope: Envelope) -> TimelineKey:
    return (
        utc_iso(envelope.occurred_at),
        envelope.source,
        envelope.aggregate_id,
        envelope.aggregate_version,
    )


def is_clinical(envelope: Envelope) -> bool:
    """Whether the event is on the timeline: every service's, and of the registry's only the
    death (a register fact that is also the pathway's last event)."""
    return envelope.source != REGISTRY or isinstance(envelope.data, reg.PatientDied)


class NotInOrder(Exception):
    """A new event sorts before what the stored state already holds: replay the history."""


@dataclass
class Folded:
    """One aggregate folded so far: the highest version applied and its view (None: its first
    event has not arrived, so the fold waits and ignores the later ones)."""

    version: int
    view: Any


#: The aggregates folded in version order: source → (the state's attribute, the fold's step).
STEPS: dict[str, tuple[str, Callable[[Any, Envelope], Any]]] = {
    "referrals": ("referrals", step_referral),
    "admissions": ("stays", step_stay),
    "discharges": ("discharges", step_discharge),
    "municipal": ("services", step_service),
    "correspondence": ("correspondence", step_correspondence),
}


@dataclass
class PatientState:
    """All the fold needs to go on from where it stopped — never the history itself."""

    count: int = 0  # clinical events on the timeline
    patient: dict[str, str] | None = None
    first_occurred_at: str | None = None
    last: TimelineKey | None = None  # the last clinical event applied
    medication_names: dict[str, str] = field(default_factory=dict)  # the summariser's memory
    referrals: dict[str, Folded] = field(default_factory=dict)
    stays: dict[str, Folded] = field(default_factory=dict)
    discharges: dict[str, Folded] = field(default_factory=dict)
    services: dict[str, Folded] = field(default_factory=dict)  # municipal services
    correspondence: dict[str, Folded] = field(default_factory=dict)
    medications: MedicationProjection | None = None
    registrations: list[Registration] = field(default_factory=list)
    blocks: list[BlockChange] = field(default_factory=list)
    death: Death | None = None  # the registers' (recorded once)

    def add(self, envelopes: Iterable[Envelope]) -> list[TimelineEntry]:
        """Apply new events (not yet applied, deduplicated) on top of this state; returns the
        new timeline entries, which follow the stored ones. Raises NotInOrder, leaving the
        state untouched, when the result would differ from a replay."""
        everything = list(envelopes)
        clinical = sorted((e for e in everything if is_clinical(e)), key=timeline_order)
        self._check_order(clinical)
        for e in everything:
            if e.source == REGISTRY:
                self._register(e)
        for e in clinical:
            if e.source in STEPS:
                self._advance(e)
        return self._extend_timeline(clinical)

    def _check_order(self, clinical: list[Envelope]) -> None:
        if not clinical:
            return
        if self.last is not None and timeline_order(clinical[0]) <= self.last:
            raise NotInOrder("a new event sorts before the last one applied")
        applied: dict[str, int] = {}
        for e in clinical:
            if e.source not in STEPS:
                continue
            if e.aggregate_id not in applied:
                folded = self._aggregates(e.source).get(e.aggregate_id)
                applied[e.aggregate_id] = folded.version if folded else 0
            if e.aggregate_version <= applied[e.aggregate_id]:
                raise NotInOrder("a new event comes before a version already applied")
            applied[e.aggregate_id] = e.aggregate_version

    def _aggregates(self, source: str) -> dict[str, Folded]:
        found: dict[str, Folded] = getattr(self, STEPS[source][0])
        return found

    def _advance(self, e: Envelope) -> None:
        """The event's aggregate one version on (the events of an aggregate in version order)."""
        step = STEPS[e.source][1]
        aggregates = self._aggregates(e.source)
        folded = aggregates.get(e.aggregate_id)
        if folded is None:
            aggregates[e.aggregate_id] = Folded(e.aggregate_version, step(None, e))
            return
        if folded.view is not None:
            folded.view = step(folded.view, e)
        folded.version = max(folded.version, e.aggregate_version)

    def _register(self, e: Envelope) -> None:
        """A register event, put in its place (register events never need a replay)."""
        found = registration(e)
        if found is not None:
            self.registrations.append(found)
            self.registrations.sort(key=lambda r: r.place)
        block = block_change(e)
        if block is not None:
            self.blocks.append(block)
            self.blocks.sort(key=lambda b: b.place)
        if isinstance(e.data, reg.PatientDied):
            death = Death(utc_iso(e.occurred_at), e.data.died_on, e.event_id)
            if self.death is None or death.at < self.death.at:
                self.death = death

    def _extend_timeline(self, ordered: list[Envelope]) -> list[TimelineEntry]:
        """The clinical events, in timeline order after the last one: their summaries, and the
        medication list (folded in clinical order, which is the timeline's for one list)."""
        summarise = Summariser(self.medication_names)
        entries = []
        for e in ordered:
            if self.patient is None:
                self.patient, self.first_occurred_at = dict(e.patient), utc_iso(e.occurred_at)
            entries.append((e, summarise(e)))
            if e.source == MEDICATIONS:
                if self.medications is None:
                    self.medications = MedicationProjection.start(e)
                self.medications.add(e, utc_iso(e.occurred_at))
        if ordered:
            self.count += len(ordered)
            self.last = timeline_order(ordered[-1])
        return entries


def replay(envelopes: Iterable[Envelope]) -> tuple[PatientState, list[TimelineEntry]]:
    """The state and the whole timeline from all of a patient's events (any order)."""
    everything = list(envelopes)
    state = PatientState()
    for e in everything:
        if e.source == REGISTRY:
            state._register(e)
    ordered = sorted((e for e in everything if is_clinical(e)), key=timeline_order)
    by_aggregate: dict[str, list[Envelope]] = {}
    for e in ordered:
        if e.source in STEPS:
            by_aggregate.setdefault(e.aggregate_id, []).append(e)
    for history in by_aggregate.values():
        for e in sorted(history, key=lambda e: e.aggregate_version):
            state._advance(e)
    return state, state._extend_timeline(ordered)


@dataclass
class PatientPathway:
    """What the read model shows of a patient, derived from the folded state."""

    timeline: list[TimelineEntry] = field(default_factory=list)  # (event, summary)
    referrals: list[ReferralView] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    location: Location = UNKNOWN
    discharges: list[DischargeView] = field(default_factory=list)
    stays: list[StayView] = field(default_factory=list)
    #: The municipality's and the GP's correspondence, oldest first.
    correspondence: list[CorrespondenceView] = field(default_factory=list)
    #: What the registers say (residence, temporary residence, fastlege), never the events.
    register: RegisterFacts = field(default_factory=lambda: facts_of([]))
    blocks: list[BlockChange] = field(default_factory=list)  # the blocks in force
    medications: MedicationProjection | None = None
    #: The municipal services, the earliest decision first.
    services: list[MunicipalServiceView] = field(default_factory=list)
    death: Death | None = None

    @property
    def municipality_her_id(self) -> str | None:
        """The municipality the patient lives in, from the registers (None: unknown)."""
        return self.register.home_municipality

    @property
    def messages(self) -> list[PloMessage]:
        """Every message between organisations, in the order they were sent."""
        found = [m for r in self.referrals for m in r.messages]
        found += [m for s in self.stays for m in s.messages.values()]
        found += [m for d in self.discharges for m in d.messages.values()]
        found += [m for c in self.correspondence for m in c.messages.values()]
        return sorted(found, key=lambda m: (m.sent_at, m.event_id))

    @property
    def open_referrals(self) -> int:
        return sum(1 for r in self.referrals if r.is_open)


def _at_death(
    death: Death,
    stays: list[StayView],
    discharges: list[DischargeView],
    services: list[MunicipalServiceView],
) -> tuple[list[StayView], list[DischargeView], list[MunicipalServiceView]]:
    """What the patient's death ends, as the pathway shows it (copies; the folded state keeps
    what the services recorded): open stays close at the death, a running readiness period
    ends there (no payment after it), and so does every municipal service not yet ended."""
    stays = [s if s.closed_at else replace(s, closed_at=death.at) for s in stays]
    discharges = [at_death(d, death.at) for d in discharges]
    services = [
        s if s.ended_at else replace(s, ended_at=death.at, end_reason="PATIENT_DIED")
        for s in services
    ]
    return stays, discharges, services


def pathway_of(state: PatientState, timeline: list[TimelineEntry] | None = None) -> PatientPathway:
    """The pathway a state holds (with `timeline`, the entries the caller has). After the
    registers' death no task is open: everything waiting on anyone for the patient is over."""
    views = [f.view for f in state.referrals.values() if f.view is not None]
    stays = [f.view for f in state.stays.values() if f.view is not None]
    discharges = [f.view for f in state.discharges.values() if f.view is not None]
    services = sorted(
        (f.view for f in state.services.values() if f.view is not None),
        key=lambda s: (s.decided_at, s.service_id),
    )
    correspondence = sorted(
        (f.view for f in state.correspondence.values() if f.view is not None),
        key=lambda c: (c.sent_at, c.correspondence_id),
    )
    referrals = sorted(views, key=lambda v: (v.sent_at, v.referral_id), reverse=True)
    if state.death is not None:
        stays, discharges, services = _at_death(state.death, stays, discharges, services)
    tasks = [t for r in referrals for t in referral_tasks(r)]
    tasks += [t for s in stays for t in stay_tasks(s)]
    tasks += [t for d in discharges for t in discharge_tasks(d)]
    tasks += [t for c in correspondence for t in correspondence_tasks(c)]
    tasks += [t for s in services for t in service_tasks(s)]
    register = facts_of(state.registrations)
    tasks += reconciliation_tasks(discharges, register, _last_reconciled_at(state))
    if state.death is not None:
        tasks = []
    return PatientPathway(
        timeline=timeline or [],
        referrals=referrals,
        tasks=sorted(tasks, key=lambda t: (t.due, t.task_id)),
        location=location(stays, discharges, services, state.death),
        discharges=discharges,
        stays=stays,
        correspondence=correspondence,
        register=register,
        blocks=active_blocks(state.blocks),
        medications=state.medications,
        services=services,
        death=state.death,
    )


def _last_reconciled_at(state: PatientState) -> str | None:
    """Clinical time of the medication list's latest reconciliation (None: never)."""
    if state.medications is None or state.medications.view.last_reconciliation is None:
        return None
    return utc_iso(state.medications.view.last_reconciliation.reconciled_at)


def fold(envelopes: Iterable[Envelope]) -> PatientPathway:
    """The patient's pathway from all of their events. The registry's events give the register
    facts only; they are not clinical events and stay off the timeline."""
    state, timeline = replay(envelopes)
    return pathway_of(state, timeline)
