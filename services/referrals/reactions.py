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
from datetime import datetime
from typing import Any
from uuid import UUID

from nameko.events import event_handler
from nameko.extensions import DependencyProvider

from services.referrals.application import ReferralsApplication
from services.referrals.domain import Referral, ReferralState
from shared import config
from shared.auth import Actor
from shared.domain import CommandContext
from shared.errors import DomainError, NotFound

log = logging.getLogger(__name__)


class Referrals(DependencyProvider):  # type: ignore[misc]
    """The referrals application on its configured store (one per container)."""

    def setup(self) -> None:
        self.app = ReferralsApplication.from_url(config.database_url("referrals"))

    def stop(self) -> None:
        self.app.close()

    def get_dependency(self, worker_ctx: Any) -> ReferralsApplication:
        return self.app


def complete_on_admission(app: ReferralsApplication, envelope: dict[str, Any]) -> bool:
    """Complete the admission's referral when the rules allow; True when it is completed."""
    data = envelope["data"]
    event_id = envelope["event_id"]
    if data.get("admission_type") != "ELECTIVE" or not data.get("referral_id"):
        return False
    actor = Actor.from_dict(envelope["actor"])
    ctx = CommandContext(
        command_id=f"admission:{event_id}",
        occurred_at=datetime.fromisoformat(envelope["occurred_at"]),
        actor=actor,
        correlation_id=envelope["correlation_id"],
    )
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

    referrals = Referrals()

    @event_handler("admissions", "PatientAdmitted")  # type: ignore[untyped-decorator]
    def handle_patient_admitted(self, envelope: dict[str, Any]) -> None:
        complete_on_admission(self.referrals, envelope)
