"""What every carepath aggregate shares: the command context that becomes each event's
metadata, and remembering which commands were handled so that retries write nothing.

No I/O here: domain modules import this, never grpc, pika, nameko or SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.domain import Aggregate

from shared.actors import Actor


@dataclass(frozen=True, slots=True)
class CommandContext:
    """Who asked, when it happened clinically, and the client's idempotency key; and the
    trace the command belongs to (a W3C `traceparent`, shared.tracing), stored with its events
    so the relay and every consumer continue it."""

    command_id: str
    occurred_at: datetime
    actor: Actor
    correlation_id: str
    traceparent: str = ""

    def meta(self, patient: dict[str, str]) -> dict[str, Any]:
        """The JSON-safe metadata stored on every event (mapped to the public envelope)."""
        meta = {
            "command_id": self.command_id,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat(),
            "actor": self.actor.as_dict(),
            "correlation_id": self.correlation_id,
            "patient": dict(patient),
        }
        if self.traceparent:
            meta["traceparent"] = self.traceparent
        return meta


def command_key(her_id: str, command_id: str) -> str:
    """Command ids are unique per calling organisation (CommandMetadata.command_id), so a
    command is known by both: two organisations acting on one aggregate may pick the same id."""
    return f"{her_id}:{command_id}"


def handled_key(meta: dict[str, Any]) -> str:
    """The command key of an event's metadata."""
    return command_key(meta["actor"]["her_id"], meta["command_id"])


class CarepathAggregate(Aggregate):
    """Base of every carepath aggregate.

    Each event carries `meta` (see `CommandContext.meta`); applying it records the calling
    organisation's command id so a repeated command can be recognised and answered with its
    first result.
    """

    def _handled(self, meta: dict[str, Any]) -> None:
        self.__dict__.setdefault("command_keys", set()).add(handled_key(meta))

    def has_handled(self, ctx: CommandContext) -> bool:
        return command_key(ctx.actor.her_id, ctx.command_id) in self.__dict__.get(
            "command_keys", set()
        )
