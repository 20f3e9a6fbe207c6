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
from uuid import UUID

from services.referrals.application import ReferralsApplication
from shared.errors import DomainError
from shared.events import Envelope
from shared.events.admissions import PatientAdmitted
from shared.reactions import ApplicationProvider, reaction, reaction_context

log = logging.getLogger(__name__)


def complete_on_admission(app: ReferralsApplication, event: Envelope) -> None:
    """Complete the elective admission's referral when the referral's rules allow it (the
    receiving hospital, an ACCEPTED referral); anything else is left alone."""
    admitted = event.payload(PatientAdmitted)
    if admitted.admission_type != "ELECTIVE" or not admitted.referral_id:
        return
    try:
        app.complete(reaction_context(event, "admission"), UUID(admitted.referral_id))
    except DomainError as exc:  # unknown, not ACCEPTED, or another hospital's referral
        log.debug("admission %s leaves its referral: %s", event.event_id, type(exc).__name__)


class ReferralsReactions:
    name = "referrals_reactions"

    referrals = ApplicationProvider(ReferralsApplication)

    @reaction("admissions", "PatientAdmitted")
    def handle_patient_admitted(self, event: Envelope) -> None:
        complete_on_admission(self.referrals, event)
