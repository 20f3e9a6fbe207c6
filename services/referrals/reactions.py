"""nameko reactions of referrals: an elective admission starts the referred care.

Runs as its own process (never beside a gRPC server):

    PSYCOPG_WAIT_FUNC=wait_select nameko run --config infra/nameko.yml services.referrals.reactions

When a hospital admits a patient electively for an ACCEPTED referral it is the receiver of,
the referral is completed (the care it asked for has started). Anything else (acute
admission, no referral, another hospital, a referral not ACCEPTED) is not this reaction's
business and is left alone. Idempotent: the command id derives from the event id.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from nameko.events import event_handler

from services.referrals.application import ReferralsApplication
from services.referrals.domain import Referral, ReferralState
from shared.errors import DomainError, NotFound
from shared.reactions import ApplicationProvider, reaction_context

log = logging.getLogger(__name__)


def complete_on_admission(app: ReferralsApplication, envelope: dict[str, Any]) -> bool:
    """Complete the admission's referral when the rules allow; True when it is completed."""
    data = envelope["data"]
    event_id = envelope["event_id"]
    if data.get("admission_type") != "ELECTIVE" or not data.get("referral_id"):
        return False
    ctx = reaction_context(envelope, "admission")
    actor = ctx.actor
    referral_id = UUID(data["referral_id"])
    try:
        referral = app.load(Referral, referral_id, "referral")
    except NotFound:
        log.debug("admission %s names an unknown referral", event_id)
        return False
    if referral.has_handled(ctx.command_id):
        return True  # redelivery: completed the first time
    if referral.state is not ReferralState.ACCEPTED or referral.receiver_her_id != actor.her_id:
        log.debug("admission %s does not complete its referral", event_id)
        return False
    try:
        app.complete(ctx, referral_id)
    except DomainError as exc:  # changed between the look and the command
        log.debug("admission %s did not complete its referral: %s", event_id, type(exc).__name__)
        return False
    return True


class ReferralsReactions:
    name = "referrals_reactions"

    referrals = ApplicationProvider(ReferralsApplication)

    @event_handler("admissions", "PatientAdmitted")  # type: ignore[untyped-decorator]
    def handle_patient_admitted(self, envelope: dict[str, Any]) -> None:
        complete_on_admission(self.referrals, envelope)
