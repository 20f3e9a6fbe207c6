"""nameko reactions of referrals: an elective admission starts the referred care.

Runs as its own process (never beside a gRPC server):

    PSYCOPG_WAIT_FUNC=wait_select python -m shared.run_reactions services.referrals.reactions

When a hospital admits a patient electively for an ACCEPTED referral it is the receiver of,
the referral is completed (the care it asked for has started). Only a PatientAdmitted the
admissions service published is taken (its `user_id`, checked by the entrypoint), and only
when the access policy lets the admitting hospital complete that referral
(`ReferralService/CompleteReferral`: its receiver); an admission naming a referral the policy
does not let it complete goes to the dead-letter queue with the reason. An acute admission, one
without a referral, or a referral not ACCEPTED is not this reaction's business and is left
alone. Idempotent: the command id derives from the event id.
"""

from __future__ import annotations

import logging
from uuid import UUID

from services.referrals.api import resolvers
from services.referrals.application import ReferralsApplication
from shared.errors import Conflict, DomainError, NotYetKnown
from shared.events import Envelope
from shared.events.admissions import PatientAdmitted
from shared.reactions import (
    ApplicationProvider,
    NotApplied,
    policy_refusal,
    reaction,
    reaction_context,
)

log = logging.getLogger(__name__)


def complete_on_admission(app: ReferralsApplication, event: Envelope) -> None:
    """Complete the elective admission's referral when the access policy and the referral's
    rules allow it (the receiving hospital, an ACCEPTED referral); raises NotApplied when the
    policy refuses."""
    admitted = event.payload(PatientAdmitted)
    if admitted.admission_type != "ELECTIVE" or not admitted.referral_id:
        return
    referral_id = UUID(admitted.referral_id)
    referral = resolvers(app)["referral"](referral_id)
    refusal = policy_refusal("ReferralService/CompleteReferral", event, referral)
    if refusal is not None:
        raise NotApplied(f"referral not completed: {refusal}")
    try:
        app.complete(reaction_context(event, "admission"), referral_id)
    except (Conflict, NotYetKnown):
        raise  # may pass (a concurrent change): tried again later (shared.reactions)
    except DomainError as exc:  # not (or no longer) ACCEPTED: not this reaction's business
        log.debug("admission %s leaves its referral: %s", event.event_id, type(exc).__name__)


class ReferralsReactions:
    name = "referrals_reactions"

    referrals = ApplicationProvider(ReferralsApplication)

    @reaction("admissions", "PatientAdmitted")
    def handle_patient_admitted(self, event: Envelope) -> None:
        complete_on_admission(self.referrals, event)
