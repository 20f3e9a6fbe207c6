"""The referrals service's domain events → the public contract (shared.events.referrals), one
mapping per published event type. The relay publishes only what is mapped here."""

from __future__ import annotations

from typing import Any

from shared.events import referrals as ev
from shared.events.base import AppRecError, Contract


def referral_sent(e: Any) -> ev.ReferralSent:
    return ev.ReferralSent(
        sender_her_id=e.sender_her_id,
        receiver_her_id=e.receiver_her_id,
        reason=e.reason,
        priority=e.priority,
        cancer_pathway=e.cancer_pathway,
    )


def referral_receipt_recorded(e: Any) -> ev.ReferralReceiptRecorded:
    return ev.ReferralReceiptRecorded(
        receiver_her_id=e.receiver_her_id,
        status=e.status,
        errors=[AppRecError(code=x["code"], description=x["description"]) for x in e.errors],
    )


def referral_accepted(e: Any) -> ev.ReferralAccepted:
    return ev.ReferralAccepted(planned_date=e.planned_date.isoformat())


def referral_rejected(e: Any) -> ev.ReferralRejected:
    return ev.ReferralRejected(reason=e.reason)


def referral_forwarded(e: Any) -> ev.ReferralForwarded:
    return ev.ReferralForwarded(from_her_id=e.from_her_id, to_her_id=e.to_her_id, reason=e.reason)


def referral_completed(e: Any) -> ev.ReferralCompleted:
    return ev.ReferralCompleted()


def referral_cancelled(e: Any) -> ev.ReferralCancelled:
    return ev.ReferralCancelled(reason=e.reason)


def cancer_pathway_milestone_reached(e: Any) -> ev.CancerPathwayMilestoneReached:
    return ev.CancerPathwayMilestoneReached(milestone=e.milestone, treatment=e.treatment)


def cancer_pathway_ended(e: Any) -> ev.CancerPathwayEnded:
    return ev.CancerPathwayEnded(reason=e.reason, note=e.note)


def referral_resent(e: Any) -> ev.ReferralResent:
    return ev.ReferralResent(
        previous_receiver_her_id=e.previous_receiver_her_id,
        receiver_her_id=e.receiver_her_id,
        reason=e.reason,
    )


CONTRACT: Contract = {
    "ReferralSent": referral_sent,
    "ReferralReceiptRecorded": referral_receipt_recorded,
    "ReferralAccepted": referral_accepted,
    "ReferralRejected": referral_rejected,
    "ReferralForwarded": referral_forwarded,
    "ReferralCompleted": referral_completed,
    "ReferralCancelled": referral_cancelled,
    "CancerPathwayMilestoneReached": cancer_pathway_milestone_reached,
    "CancerPathwayEnded": cancer_pathway_ended,
    "ReferralResent": referral_resent,
}
