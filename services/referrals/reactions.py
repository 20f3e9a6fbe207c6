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
from typing import Any
from uuid import UUID

from services.referrals.api import resolvers
from services.referrals.application import ReferralsApplication
from shared.errors import DomainError
from shared.reactions import (
    ApplicationProvider,
    DeadLetters,
    Park,
    event_handler,
    policy_refusal,
    reaction_context,
)

log = logging.getLogger(__name__)


def complete_on_admission(app: ReferralsApplication, envelope: dict[str, Any], park: Park) -> None:
    """Complete the elective admission's referral when the access policy and the referral's
    rules allow it (the receiving hospital, an ACCEPTED referral)."""
    data = envelope["data"]
    if data.get("admission_type") != "ELECTIVE" or not data.get("referral_id"):
        return
    referral_id = UUID(data["referral_id"])
    referral = resolvers(app)["referral"](referral_id)
    refusal = policy_refusal("ReferralService/CompleteReferral", envelope, referral)
    if refusal is not None:
        park(envelope, f"referral not completed: {refusal}")
        return
    try:
        app.complete(reaction_context(envelope, "admission"), referral_id)
    except DomainError as exc:  # not (or no longer) ACCEPTED: not this reaction's business
        log.debug("admission %s leaves its referral: %s", envelope["event_id"], type(exc).__name__)


class ReferralsReactions:
    name = "referrals_reactions"

    referrals = ApplicationProvider(ReferralsApplication)
    park = DeadLetters()

    @event_handler("admissions", "PatientAdmitted")  # type: ignore[untyped-decorator]
    def handle_patient_admitted(self, envelope: dict[str, Any]) -> None:
        complete_on_admission(self.referrals, envelope, self.park)
