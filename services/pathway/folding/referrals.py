"""The referral part of the fold: each referral's state, its receivers in turn, its messages and
its cancer pathway's milestones (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.pathway.folding.messages import PloMessage
from shared import rules
from shared.events import Envelope
from shared.events import referrals as rf
from shared.times import utc_iso

OPEN_REFERRAL_STATES = frozenset({"SENT", "RECEIVED", "FORWARDED", "ACCEPTED"})
#: A cancer pathway stops being followed when its referral is declined or withdrawn.
CANCER_PATHWAY_ENDED = frozenset({"REJECTED", "CANCELLED", "RECEIPT_REJECTED"})
CANCER_MILESTONES = tuple(m.upper() for m in rules.CANCER_MILESTONES)


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


def step_referral(view: ReferralView | None, e: Envelope) -> ReferralView | None:
    """The referral after one more of its events (in version order); None while its
    ReferralSent has not arrived (the fold waits for it)."""
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
        return view
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
