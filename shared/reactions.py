"""What every nameko reaction shares: the command a reaction issues (idempotent, from the
event), the application it acts on, and a place for events it cannot apply.

Reactions run in their own `nameko run` processes (never beside a gRPC server).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

from kombu import Exchange  # type: ignore[attr-defined]
from nameko.extensions import DependencyProvider
from nameko.messaging import Publisher

from shared import config
from shared.amqp import DEAD_LETTER_EXCHANGE
from shared.auth import Actor
from shared.domain import CommandContext
from shared.store import CarepathApplication

log = logging.getLogger(__name__)

A = TypeVar("A", bound=CarepathApplication)


def reaction_context(envelope: dict[str, Any], prefix: str) -> CommandContext:
    """The command a reaction issues: its id derives from the event's id (so a redelivery is a
    retry that returns the first result), the actor and clinical time are the event's."""
    return CommandContext(
        command_id=f"{prefix}:{envelope['event_id']}",
        occurred_at=datetime.fromisoformat(envelope["occurred_at"]),
        actor=Actor.from_dict(envelope["actor"]),
        correlation_id=envelope["correlation_id"],
    )


class ApplicationProvider(DependencyProvider, Generic[A]):  # type: ignore[misc]
    """A domain service's application on its configured store (one per container)."""

    def __init__(self, app_class: type[A]) -> None:
        self.app_class = app_class

    def setup(self) -> None:
        self.app = self.app_class.from_url(config.database_url(self.app_class.name))

    def stop(self) -> None:
        self.app.close()

    def get_dependency(self, worker_ctx: Any) -> A:
        return self.app


Park = Callable[[dict[str, Any], str], None]


class DeadLetters(Publisher):  # type: ignore[misc]
    """Parks an event a reaction could not apply on `carepath.dead-letter`, with the reason,
    instead of dropping it (nameko acks a handled message either way)."""

    def __init__(self) -> None:
        exchange = Exchange(DEAD_LETTER_EXCHANGE, type="fanout", durable=True)  # type: ignore[no-untyped-call]
        super().__init__(exchange=exchange)

    def get_dependency(self, worker_ctx: Any) -> Park:
        publish = super().get_dependency(worker_ctx)

        def park(envelope: dict[str, Any], reason: str) -> None:
            log.warning(
                "event %s parked on the dead-letter queue: %s", envelope["event_id"], reason
            )
            publish(
                envelope,
                routing_key=envelope["event_type"],
                headers={
                    "x-carepath-reason": reason[:500],
                    "x-original-exchange": f"{envelope['source']}.events",
                    "x-original-routing-key": envelope["event_type"],
                },
            )

        return park
