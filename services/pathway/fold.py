"""The deterministic fold: one patient's events → timeline, referral states, summary.

Pure functions, no I/O. The same set of events gives the same rows whatever order or how many
times they arrived: the timeline is sorted by (clinical time, source, aggregate, version) and
each referral's state is folded in its own version order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from services.pathway.discharges import DischargeView, fold_discharge
from services.pathway.messages import PloMessage
from services.pathway.relations import (
    SOURCE as REGISTRY,
)
from services.pathway.relations import (
    RegisterFacts,
    block_rows,
    register_facts,
    relationship_rows,
)
from services.pathway.summaries import (
    CANCER_MILESTONE_NAMES,
    CANCER_PATHWAY_NAMES,
    TREATMENT_NAMES,
    Summariser,
)
from shared import rules
from shared.access.model import blocks, relationships
from shared.events import Envelope, Payload
from shared.events import admissions as adm
from shared.events import referrals as rf
from shared.times import utc_iso

OPEN_REFERRAL_STATES = frozenset({"SENT", "RECEIVED", "FORWARDED", "ACCEPTED"})
#: A cancer pathway stops being followed when its referral is declined or withdrawn.
CANCER_PATHWAY_ENDED = frozenset({"REJECTED", "CANCELLED", "RECEIPT_REJECTED"})
CANCER_MILESTONES = tuple(m.upper() for m in rules.CANCER_MILESTONES)


def timeline_order(envelope: Envelope) -> tuple[str, str, str, int]:
    return (
        utc_iso(envelope.occurred_at),
        envelope.source,
        envelope.aggregate_id,
        envelope.aggregate_version,
    )


@dataclass
class ReferralView:
    referral_id: str
    state: str
    priority: str
    cancer_pathway: str | None
    sender_her_id: str
    receiver_her_id: str
    sent_at: str
    updated_at: str
    waiting_since: str  # clinical time the current wait began (sent, forwarded, received)
    cancer_started_at: str | None = None  # the first receipt: the cancer pathway's clock
    cancer_reached: dict[str, str] = field(default_factory=dict)  # milestone → clinical time
    cancer_treatment: str | None = None
    messages: list[PloMessage] = field(default_factory=list)  # sent, then each forward
    #: Each receiving hospital in turn: (HER-id, since, until the forward; None: still it).
    receivers: list[tuple[str, str, str | None]] = field(default_factory=list)
    closed_at: str | None = None  # clinical time it stopped being open

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_REFERRAL_STATES

    def cancer_milestones(self) -> list[CancerMilestoneStatus]:
        """Every milestone of the referral's cancer pathway against its standard time; each
        segment starts when the previous milestone is reached (the receipt for the first)."""
        if not self.cancer_pathway or not self.cancer_started_at:
            return []
        statuses = []
        start: str | None = self.cancer_started_at
        for milestone in CANCER_MILESTONES:
            treatment = self.cancer_treatment if milestone == "TREATMENT_START" else None
            days, due = 0, None
            if milestone != "TREATMENT_START" or treatment:
                days = rules.cancer_segment_days(self.cancer_pathway, milestone, treatment)
                if start:
                    begun = datetime.fromisoformat(start)
                    due = utc_iso(
                        rules.cancer_segment_due(self.cancer_pathway, milestone, begun, treatment)
                    )
            reached = self.cancer_reached.get(milestone)
            statuses.append(CancerMilestoneStatus(milestone, start, due, reached, days, treatment))
            start = reached
        return statuses


@dataclass(frozen=True)
class CancerMilestoneStatus:
    """One milestone of a cancer pathway: its segment's start, due time and standard days, and
    when it was reached (UTC ISO strings; None while unknown)."""

    milestone: str
    segment_start: str | None
    due: str | None
    reached_at: str | None
    standard_days: int
    treatment: str | None


@dataclass(frozen=True)
class Task:
    """Something waiting on an organisation, with its due time (UTC ISO strings)."""

    task_id: str
    kind: str
    description: str
    waiting_on_her_id: str
    waiting_on_kind: str
    since: str
    due: str
    aggregate_id: str


@dataclass
class PatientPathway:
    timeline: list[tuple[Envelope, str]] = field(default_factory=list)  # (event, summary)
    referrals: list[ReferralView] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    location: Location = field(default_factory=lambda: Location("UNSPECIFIED", None, None, None))
    discharges: list[DischargeView] = field(default_factory=list)
    stays: list[StayView] = field(default_factory=list)
    #: What the registers say (residence, temporary residence, fastlege), never the events.
    register: RegisterFacts = field(default_factory=lambda: register_facts([]))

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
        return sorted(found, key=lambda m: (m.sent_at, m.event_id))

    @property
    def open_referrals(self) -> int:
        return sum(1 for r in self.referrals if r.is_open)


def _fold_referral(history: list[Envelope]) -> ReferralView | None:
    view: ReferralView | None = None
    for e in sorted(history, key=lambda e: e.aggregate_version):
        if isinstance(e.data, rf.ReferralSent):
            sent = e.data
            view = ReferralView(
                referral_id=e.aggregate_id,
                state="SENT",
                priority=sent.priority,
                cancer_pathway=sent.cancer_pathway,
                sender_her_id=sent.sender_her_id,
                receiver_her_id=sent.receiver_her_id,
                sent_at=utc_iso(e.occurred_at),
                updated_at=utc_iso(e.occurred_at),
                waiting_since=utc_iso(e.occurred_at),
            )
            view.messages.append(
                PloMessage("Henvisning", sent.receiver_her_id, "HOSPITAL", view.sent_at, e.event_id)
            )
            view.receivers.append((sent.receiver_her_id, view.sent_at, None))
            continue
        if view is None:  # later events arrived before ReferralSent: wait for it
            return None
        match e.data:
            case rf.ReferralReceiptRecorded(status=status):
                view.state = "RECEIPT_REJECTED" if status == "REJECTED" else "RECEIVED"
                view.waiting_since = utc_iso(e.occurred_at)
                view.messages[-1].status = status
                if view.state == "RECEIVED" and view.cancer_started_at is None:
                    view.cancer_started_at = utc_iso(e.occurred_at)
            case rf.ReferralAccepted():
                view.state = "ACCEPTED"
            case rf.ReferralRejected():
                view.state = "REJECTED"
            case rf.ReferralForwarded(to_her_id=to_her_id):
                view.state = "FORWARDED"
                view.receiver_her_id = to_her_id
                view.waiting_since = utc_iso(e.occurred_at)
                her_id, since, _ = view.receivers[-1]
                view.receivers[-1] = (her_id, since, view.waiting_since)
                view.receivers.append((to_her_id, view.waiting_since, None))
                view.messages.append(
                    PloMessage(
                        "Henvisning (videresendt)",
                        to_her_id,
                        "HOSPITAL",
                        view.waiting_since,
                        e.event_id,
                    )
                )
            case rf.ReferralCompleted():
                view.state = "COMPLETED"
            case rf.ReferralCancelled():
                view.state = "CANCELLED"
            case rf.CancerPathwayMilestoneReached(milestone=milestone, treatment=treatment):
                view.cancer_reached[milestone] = utc_iso(e.occurred_at)
                view.cancer_treatment = treatment or view.cancer_treatment
        view.updated_at = max(view.updated_at, utc_iso(e.occurred_at))
        if not view.is_open and view.closed_at is None:
            view.closed_at = utc_iso(e.occurred_at)
    return view


@dataclass(frozen=True)
class Location:
    """Where the patient is: kind (HOSPITAL, …; UNSPECIFIED when unknown), where, since."""

    kind: str
    her_id: str | None
    ward: str | None
    since: str | None


@dataclass
class StayView:
    stay_id: str
    hospital_her_id: str  # the responsible hospital now
    ward: str
    admitted_at: str
    since: str  # admitted, or moved to the current hospital/ward
    existing_service_user: bool
    closed_at: str | None = None
    health_information_sent: bool = False
    messages: dict[str, PloMessage] = field(default_factory=dict)
    #: Every hospital responsible in turn, with when it became responsible.
    hospitals: list[tuple[str, str]] = field(default_factory=list)


#: Each PLO message of a stay: its name and the kind of organisation that receives it.
MESSAGE_NAMES: dict[type[Payload], tuple[str, str]] = {
    adm.AdmissionNoticeSent: ("Melding om innlagt pasient", "MUNICIPALITY"),
    adm.AdmissionReportReceived: ("Innleggelsesrapport", "HOSPITAL"),
    adm.HealthInformationSent: ("Helseopplysninger", "MUNICIPALITY"),
}


def _fold_stay(history: list[Envelope]) -> StayView | None:
    view: StayView | None = None
    for e in sorted(history, key=lambda e: e.aggregate_version):
        when = utc_iso(e.occurred_at)
        if isinstance(e.data, adm.PatientAdmitted):
            admitted = e.data
            view = StayView(
                stay_id=e.aggregate_id,
                hospital_her_id=admitted.hospital_her_id,
                ward=admitted.ward,
                admitted_at=when,
                since=when,
                existing_service_user=admitted.existing_service_user,
                hospitals=[(admitted.hospital_her_id, when)],
            )
            continue
        if view is None:  # later events arrived before the admission: wait for it
            return None
        match e.data:
            case (
                adm.AdmissionNoticeSent()
                | adm.AdmissionReportReceived()
                | adm.HealthInformationSent()
            ):
                name, to_kind = MESSAGE_NAMES[type(e.data)]
                view.messages[e.data.message_id] = PloMessage(
                    name, e.data.to_her_id, to_kind, when, e.event_id
                )
                if isinstance(e.data, adm.HealthInformationSent):
                    view.health_information_sent = True
            case adm.MessageReceiptRecorded(message_id=message_id, status=status) if (
                message_id in view.messages
            ):
                view.messages[message_id].status = status
            case adm.PatientTransferred(to_hospital_her_id=hospital, to_ward=ward):
                view.hospital_her_id, view.ward, view.since = hospital, ward, when
                view.hospitals.append((hospital, when))
            case adm.StayClosed():
                view.closed_at = when
    return view


def _receipt_tasks(messages: dict[str, PloMessage], aggregate_id: str) -> list[Task]:
    """Every message still without its application receipt waits on its receiver."""
    return [
        Task(
            task_id=f"{message_id}:MESSAGE_RECEIPT",
            kind="MESSAGE_RECEIPT",
            description=f"{m.name} venter på applikasjonskvittering",
            waiting_on_her_id=m.to_her_id,
            waiting_on_kind=m.to_kind,
            since=m.sent_at,
            due=utc_iso(rules.receipt_due(datetime.fromisoformat(m.sent_at))),
            aggregate_id=aggregate_id,
        )
        for message_id, m in sorted(messages.items())
        if not m.answered
    ]


def _stay_tasks(stay: StayView) -> list[Task]:
    tasks = _receipt_tasks(stay.messages, stay.stay_id)
    if stay.existing_service_user and not stay.health_information_sent and not stay.closed_at:
        admitted = datetime.fromisoformat(stay.admitted_at)
        tasks.append(
            Task(
                task_id=f"{stay.stay_id}:HEALTH_INFORMATION",
                kind="HEALTH_INFORMATION",
                description="Helseopplysninger til kommunen innen 24 timer etter innleggelse",
                waiting_on_her_id=stay.hospital_her_id,
                waiting_on_kind="HOSPITAL",
                since=stay.admitted_at,
                due=utc_iso(rules.health_information_due(admitted)),
                aggregate_id=stay.stay_id,
            )
        )
    return tasks


def _location(stays: list[StayView], discharges: list[DischargeView]) -> Location:
    """In hospital while a stay is open (after a discharge to another hospital, that
    hospital's new stay); otherwise where the latest discharge sent the patient."""
    open_stays = [s for s in stays if s.closed_at is None]
    discharged = [d for d in discharges if d.discharged_at and d.destination != "OTHER_HOSPITAL"]
    latest = max(discharged, key=lambda d: (d.discharged_at or "", d.discharge_id), default=None)
    if open_stays:
        current = max(open_stays, key=lambda s: (s.since, s.stay_id))
        if latest is None or (latest.discharged_at or "") < current.since:
            return Location("HOSPITAL", current.hospital_her_id, current.ward, current.since)
    if latest is not None and latest.destination:
        return Location(latest.destination, latest.destination_her_id, None, latest.discharged_at)
    return Location("UNSPECIFIED", None, None, None)


def _discharge_tasks(d: DischargeView) -> list[Task]:
    tasks = _receipt_tasks(d.messages, d.discharge_id)
    ready = d.ready
    if ready is not None and ready.answered_at is None:
        tasks.append(
            Task(
                task_id=f"{d.discharge_id}:READINESS_ANSWER:{ready.ready_at}",
                kind="READINESS_ANSWER",
                description="Kommunen må svare om og når den kan ta imot utskrivningsklar pasient",
                waiting_on_her_id=d.municipality_her_id,
                waiting_on_kind="MUNICIPALITY",
                since=ready.ready_at,
                due=utc_iso(rules.readiness_answer_due(datetime.fromisoformat(ready.ready_at))),
                aggregate_id=d.discharge_id,
            )
        )
    return tasks


def _referral_tasks(r: ReferralView) -> list[Task]:
    tasks = _assessment_tasks(r)
    if r.state in CANCER_PATHWAY_ENDED or not r.cancer_pathway:
        return tasks
    name = CANCER_PATHWAY_NAMES[r.cancer_pathway]
    for m in r.cancer_milestones():
        if m.reached_at is None and m.segment_start and m.due:
            what = CANCER_MILESTONE_NAMES[m.milestone]
            cure = f" ({TREATMENT_NAMES[m.treatment]})" if m.treatment else ""
            tasks.append(
                Task(
                    task_id=f"{r.referral_id}:CANCER_{m.milestone}",
                    kind=f"CANCER_{m.milestone}",
                    description=f"Pakkeforløp {name}: {what}{cure} innen {m.standard_days} dager",
                    waiting_on_her_id=r.receiver_her_id,
                    waiting_on_kind="HOSPITAL",
                    since=m.segment_start,
                    due=m.due,
                    aggregate_id=r.referral_id,
                )
            )
    return tasks


def _assessment_tasks(r: ReferralView) -> list[Task]:
    since = datetime.fromisoformat(r.waiting_since)

    def task(kind: str, description: str, due: datetime) -> Task:
        return Task(
            task_id=f"{r.referral_id}:{kind}",
            kind=kind,
            description=description,
            waiting_on_her_id=r.receiver_her_id,
            waiting_on_kind="HOSPITAL",
            since=r.waiting_since,
            due=utc_iso(due),
            aggregate_id=r.referral_id,
        )

    if r.state in ("SENT", "FORWARDED"):
        return [
            task(
                "REFERRAL_RECEIPT",
                "Henvisningen venter på applikasjonskvittering fra sykehuset",
                rules.receipt_due(since),
            )
        ]
    if r.state != "RECEIVED":
        return []
    return [
        task(
            "REFERRAL_ASSESSMENT",
            "Henvisningen må vurderes og pasienten informeres",
            rules.referral_assessment_due(since),
        )
    ]


def fold(envelopes: Iterable[Envelope]) -> PatientPathway:
    """The patient's pathway from their events. The registry's events give the register
    facts only; they are not clinical events and stay off the timeline."""
    everything = list(envelopes)
    ordered = sorted((e for e in everything if e.source != REGISTRY), key=timeline_order)
    summarise = Summariser()
    result = PatientPathway(
        timeline=[(e, summarise(e)) for e in ordered], register=register_facts(everything)
    )
    by_referral: dict[str, list[Envelope]] = defaultdict(list)
    by_stay: dict[str, list[Envelope]] = defaultdict(list)
    by_discharge: dict[str, list[Envelope]] = defaultdict(list)
    for e in ordered:
        if e.source == "referrals":
            by_referral[e.aggregate_id].append(e)
        elif e.source == "admissions":
            by_stay[e.aggregate_id].append(e)
        elif e.source == "discharges":
            by_discharge[e.aggregate_id].append(e)
    stays = [s for s in map(_fold_stay, by_stay.values()) if s is not None]
    discharges = [v for v in map(fold_discharge, by_discharge.values()) if v is not None]
    result.discharges = discharges
    result.stays = stays
    result.location = _location(stays, discharges)
    views = [v for v in map(_fold_referral, by_referral.values()) if v is not None]
    result.referrals = sorted(views, key=lambda v: (v.sent_at, v.referral_id), reverse=True)
    tasks = [t for r in result.referrals for t in _referral_tasks(r)]
    tasks += [t for s in stays for t in _stay_tasks(s)]
    tasks += [t for d in discharges for t in _discharge_tasks(d)]
    result.tasks = sorted(tasks, key=lambda t: (t.due, t.task_id))
    return result


Row = dict[str, object]


def derive_rows(key: str, history: list[Envelope]) -> dict[str, list[Row]]:
    """The read-model rows of one patient (by table name), from all of their events: the
    pathway's (when there is a clinical event) and the access facts' (always: a patient the
    registers name may not have a pathway yet)."""
    pathway = fold(history)
    return {
        **rows_of(key, pathway),
        relationships.name: relationship_rows(key, pathway),
        blocks.name: block_rows(key, history),
    }


def rows_of(key: str, pathway: PatientPathway) -> dict[str, list[Row]]:
    """The read-model rows of one folded pathway. Used by the projector and by `as_of`
    answers, so both say exactly the same."""
    if not pathway.timeline:
        return {}
    timeline: list[Row] = [
        {
            "patient_key": key,
            "position": position,
            "event_id": e.event_id,
            "event_type": e.event_type,
            "source": e.source,
            "level": e.actor.get("org_kind", ""),
            "actor_her_id": e.actor.get("her_id", ""),
            "actor_hpr": e.actor.get("hpr"),
            "occurred_at": utc_iso(e.occurred_at),
            "recorded_at": utc_iso(e.recorded_at),
            "aggregate_id": e.aggregate_id,
            "summary": summary[:300],
        }
        for position, (e, summary) in enumerate(pathway.timeline)
    ]
    referrals: list[Row] = [
        {
            "referral_id": r.referral_id,
            "patient_key": key,
            "state": r.state,
            "priority": r.priority,
            "cancer_pathway": r.cancer_pathway,
            "sender_her_id": r.sender_her_id,
            "receiver_her_id": r.receiver_her_id,
            "sent_at": r.sent_at,
            "updated_at": r.updated_at,
            "is_open": r.is_open,
            "cancer_milestones": [vars(m) for m in r.cancer_milestones()] or None,
        }
        for r in pathway.referrals
    ]
    tasks: list[Row] = [{"patient_key": key, **vars(t)} for t in pathway.tasks]
    first, last = pathway.timeline[0][0], pathway.timeline[-1][0]
    patient: Row = {
        "patient_key": key,
        "system": first.patient["system"],
        "value": first.patient["value"],
        "event_count": len(pathway.timeline),
        "open_referrals": pathway.open_referrals,
        "first_occurred_at": utc_iso(first.occurred_at),
        "last_occurred_at": utc_iso(last.occurred_at),
        "municipality_her_id": pathway.municipality_her_id,
        "open_tasks": len(pathway.tasks),
        "next_due": pathway.tasks[0].due if pathway.tasks else None,
        "location_kind": pathway.location.kind,
        "location_her_id": pathway.location.her_id,
        "location_ward": pathway.location.ward,
        "location_since": pathway.location.since,
        "ready_for_discharge_since": max(
            (d.ready.ready_at for d in pathway.discharges if d.ready), default=None
        ),
    }
    return {
        "pathway_timeline": timeline,
        "pathway_referrals": referrals,
        "pathway_tasks": tasks,
        "pathway_patients": [patient],
    }
