"""nameko reactions of admissions: a discharge closes the stay.

Runs as its own process (never beside a gRPC server):

    PSYCOPG_WAIT_FUNC=wait_select nameko run --config infra/nameko.yml services.admissions.reactions

Idempotent under redelivery: the close command's id derives from the PatientDischarged event's
id, so a second delivery returns the first result and writes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from uuid import UUID

from nameko.events import event_handler
from nameko.extensions import DependencyProvider

from services.admissions.application import AdmissionsApplication
from services.admissions.domain import CloseReason
from shared import config
from shared.auth import Actor
from shared.domain import CommandContext
from shared.errors import DomainError, InvalidTransition

log = logging.getLogger(__name__)


class Admissions(DependencyProvider):  # type: ignore[misc]
    """The admissions application on its configured store (one per container)."""

    def setup(self) -> None:
        self.app = AdmissionsApplication.from_url(config.database_url("admissions"))

    def stop(self) -> None:
        self.app.close()

    def get_dependency(self, worker_ctx: Any) -> AdmissionsApplication:
        return self.app


def reaction_context(envelope: dict[str, Any], prefix: str) -> CommandContext:
    """The command a reaction issues: its id derives from the event's id (redelivery is a
    retry), the actor and clinical time are the event's."""
    return CommandContext(
        command_id=f"{prefix}:{envelope['event_id']}",
        occurred_at=datetime.fromisoformat(envelope["occurred_at"]),
        actor=Actor.from_dict(envelope["actor"]),
        correlation_id=envelope["correlation_id"],
    )


class AdmissionsReactions:
    name = "admissions_reactions"

    admissions = Admissions()

    @event_handler("discharges", "PatientDischarged")  # type: ignore[untyped-decorator]
    def handle_patient_discharged(self, envelope: dict[str, Any]) -> None:
        ctx = reaction_context(envelope, "discharge")
        stay_id = UUID(envelope["data"]["stay_id"])
        try:
            self.admissions.close_stay(ctx, stay_id, CloseReason.DISCHARGED)
        except InvalidTransition:
            log.debug("stay already closed by another path (event %s)", envelope["event_id"])
        except DomainError as exc:  # e.g. the stay moved hospital after the discharge check
            log.warning(
                "discharge event %s not applied: %s", envelope["event_id"], type(exc).__name__
            )
