"""Events of the referrals service (exchange `referrals.events`): the referral (henvisning)
from a GP office to a hospital, its receipt, assessment, forwarding, completion, cancellation
and the milestones of a cancer pathway (pakkeforløp)."""

from __future__ import annotations

from typing import ClassVar, Literal

from shared.events.base import AppRecErrors, AppRecStatus, Day, HerId, Payload, Text

Priority = Literal["ROUTINE", "URGENT"]
CancerPathway = Literal["BREAST", "COLORECTAL", "LYMPHOMA"]
CancerMilestone = Literal["FIRST_APPOINTMENT", "INVESTIGATION_COMPLETED", "TREATMENT_START"]
Treatment = Literal["SURGERY", "DRUGS", "RADIOTHERAPY"]
CancerPathwayEndReason = Literal[
    "CANCER_NOT_CONFIRMED", "PATIENT_DECLINED", "PATIENT_DIED", "OTHER"
]


class ReferralEvent(Payload):
    """An event of one referral (the envelope's aggregate_id is the referral's id)."""

    source: ClassVar[str] = "referrals"


class ReferralSent(ReferralEvent):
    """A GP office sent a referral (henvisning) to a hospital.

    The hospital must acknowledge it with an application receipt and assess it within the
    statutory time (10 working days; sooner when serious illness is suspected)."""

    sender_her_id: HerId
    """The referring GP office (fastlegekontor)."""
    receiver_her_id: HerId
    """The hospital asked to assess the referral and give the care."""
    reason: Text
    """Why the patient is referred: clinical free text from the GP."""
    priority: Priority
    """ROUTINE, or URGENT when serious or life-threatening illness is suspected."""
    cancer_pathway: CancerPathway | None
    """The cancer pathway (pakkeforløp) the referral starts, if any; its standard times run
    from the hospital's receipt."""


class ReferralReceiptRecorded(ReferralEvent):
    """The receiving hospital recorded its application receipt (AppRec) for the referral.

    OK or OK_ERROR_IN_PART: the referral is received and the assessment clock starts;
    REJECTED: the message could not be taken in and the GP must send it again."""

    receiver_her_id: HerId
    """The hospital that answered."""
    status: AppRecStatus
    """The receipt's status."""
    errors: AppRecErrors
    """The errors found (none for OK; at least one otherwise)."""


class ReferralAccepted(ReferralEvent):
    """The hospital assessed the referral: the patient has a right to care (rett til
    helsehjelp), planned for a day."""

    planned_date: Day
    """The day the care is planned to start."""


class ReferralRejected(ReferralEvent):
    """The hospital assessed the referral and declined it."""

    reason: Text
    """Why: clinical free text from the hospital."""


class ReferralForwarded(ReferralEvent):
    """The receiving hospital forwarded the referral to another hospital (viderehenvisning),
    which then must acknowledge and assess it."""

    from_her_id: HerId
    """The hospital that forwarded it."""
    to_her_id: HerId
    """The hospital that receives it now."""
    reason: Text
    """Why it was forwarded: free text."""


class ReferralCompleted(ReferralEvent):
    """The care the referral asked for has started (for example an elective admission for
    it): the referral is closed as done."""


class ReferralCancelled(ReferralEvent):
    """The referring GP office withdrew the referral while it was open."""

    reason: Text
    """Why it was withdrawn: free text."""


class CancerPathwayMilestoneReached(ReferralEvent):
    """The hospital recorded that the patient reached the next milestone of the referral's
    cancer pathway (first appointment, investigation completed, treatment start)."""

    milestone: CancerMilestone
    """The milestone reached; they come in this order, once each."""
    treatment: Treatment | None
    """The first treatment chosen (set from INVESTIGATION_COMPLETED on; its standard time sets
    the last segment's limit); None at the first appointment."""


class CancerPathwayEnded(ReferralEvent):
    """The receiving hospital ended the referral's cancer pathway without treatment
    (pakkeforløp slutt). Its milestone deadlines stop and it is not measured against the
    standard total (only pathways that reach treatment start are); the referral goes on."""

    reason: CancerPathwayEndReason
    """CANCER_NOT_CONFIRMED (no cancer found), PATIENT_DECLINED, PATIENT_DIED or OTHER."""
    note: Text | None
    """Free text on the ending (required with OTHER): clinical text."""


class ReferralResent(ReferralEvent):
    """The referring GP office corrected a referral whose receipt was REJECTED and sent it
    again: a new message that waits for the receiving hospital's receipt."""

    previous_receiver_her_id: HerId
    """The hospital whose system rejected the referral."""
    receiver_her_id: HerId
    """The hospital the corrected referral is sent to (often the same)."""
    reason: Text
    """The corrected referral text: clinical free text from the GP."""


EVENTS: tuple[type[Payload], ...] = (
    ReferralSent,
    ReferralReceiptRecorded,
    ReferralAccepted,
    ReferralRejected,
    ReferralForwarded,
    ReferralCompleted,
    ReferralCancelled,
    CancerPathwayMilestoneReached,
    CancerPathwayEnded,
    ReferralResent,
)
