"""The referral part of the fold: each referral's state, its receivers in turn, its messages and
its cancer pathway's milestones (pure, no I/O)."""

from __future__ import annotations

from services.pathway.folding.model import PloMessage, ReferralView
from shared.events import Envelope
from shared.events import referrals as rf
from shared.times import utc_iso


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
            view.messages[-1].receipt(status, utc_iso(e.occurred_at))
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
        case rf.CancerPathwayEnded(reason=reason):
            view.cancer_end_reason = reason
            view.cancer_ended_at = utc_iso(e.occurred_at)
        case rf.ReferralResent(receiver_her_id=to_her_id):
            # The same referral, corrected: a new message waiting for its receipt, and the
            # referral open again (its parties' relationships run on).
            view.state = "SENT"
            view.resent += 1
            view.waiting_since = utc_iso(e.occurred_at)
            view.closed_at = None
            her_id, since, until = view.receivers[-1]
            view.receivers[-1] = (her_id, since, until or view.waiting_since)
            view.receivers.append((to_her_id, view.waiting_since, None))
            view.receiver_her_id = to_her_id
            view.messages.append(
                PloMessage(
                    "Henvisning (rettet og sendt på nytt)",
                    to_her_id,
                    "HOSPITAL",
                    view.waiting_since,
                    e.event_id,
                )
            )
    view.updated_at = max(view.updated_at, utc_iso(e.occurred_at))
    if not view.is_open and view.closed_at is None:
        view.closed_at = utc_iso(e.occurred_at)
    return view
