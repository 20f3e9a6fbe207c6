"""What every nameko reaction shares: the checked entrypoint every reaction handler is declared
with, the command a reaction issues (idempotent, from the event), and the application it acts
on.

Reactions run in their own `nameko run` processes (never beside a gRPC server).

`@reaction("admissions", "PatientAdmitted")` is nameko's `@event_handler` with the contract
check in front: the handler receives the typed `Envelope` (its `data` is the payload class of
the event type), never the raw body. A message that fails the check, and a message the handler
raises on (`NotApplied` with a reason, or any other error), is published to
`carepath.dead-letter` with the reason and acked: no message stops a reaction, and none is
silently dropped. Only an unavailable store (the database down) returns the message to the
queue instead, to be tried again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from kombu import Connection, Exchange  # type: ignore[attr-defined]
from kombu.pools import producers
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.events import EventHandler
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import DependencyProvider

from shared import config, events
from shared.amqp import DEAD_LETTER_EXCHANGE
from shared.auth import Actor
from shared.domain import CommandContext
from shared.events import ContractError, Envelope
from shared.store import CarepathApplication

log = logging.getLogger(__name__)

A = TypeVar("A", bound=CarepathApplication)


#: Failures of a reaction's store, not of the event: the event is returned to the queue.
UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError)


class NotApplied(Exception):
    """A reaction could not apply an event; the reason goes with it to the dead-letter queue."""


class CheckedEventHandler(EventHandler):  # type: ignore[misc]
    """nameko's event handler with the contract check before any worker runs."""

    def check(self, body: Any, message: Any) -> Envelope:
        """The one check a message passes before a handler acts (raises ContractError): the
        contract, with the source the exchange it came on and the event type its routing key
        (shared.events.parse)."""
        info = message.delivery_info
        return events.parse(body, info["exchange"], info["routing_key"])

    def handle_message(self, body: Any, message: Any) -> None:
        try:
            envelope = self.check(body, message)
        except Exception as exc:
            log.debug("check failed", exc_info=not isinstance(exc, ContractError))
            reason = (
                str(exc) if isinstance(exc, ContractError) else f"not checked: {type(exc).__name__}"
            )
            self.park(message, reason)
            return
        try:
            self.container.spawn_worker(
                self,
                (envelope,),
                {},
                context_data=self.unpack_message_headers(message),
                handle_result=lambda ctx, result=None, exc_info=None: self._handled(
                    message, result, exc_info
                ),
            )
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)

    def _handled(self, message: Any, result: Any, exc_info: Any) -> tuple[Any, Any]:
        if exc_info is not None and isinstance(exc_info[1], UNAVAILABLE):
            # The store is down, not the message wrong: it goes back to the queue, untouched.
            log.warning("%s: store unavailable; event returned to the queue", self.method_name)
            self.queue_consumer.requeue_message(message)
            return result, None
        if exc_info is not None:
            exc = exc_info[1]
            reason = str(exc) if isinstance(exc, NotApplied) else f"{type(exc).__name__}: {exc}"
            self.park(message, f"not applied by {self.method_name}: {reason}")
            return result, None  # handled: parked with its reason
        self.queue_consumer.ack_message(message)
        return result, exc_info

    def park(self, message: Any, reason: str) -> None:
        """Dead-letter the message and ack it; if the dead-letter queue cannot be reached, the
        message goes back to its queue instead (never lost)."""
        try:
            self.dead_letter(message, reason)
        except Exception:
            log.exception("could not dead-letter a message; returned it to its queue")
            self.queue_consumer.requeue_message(message)
            return
        self.queue_consumer.ack_message(message)

    def dead_letter(self, message: Any, reason: str) -> None:
        """Park the message as it arrived (its raw body) with the reason."""
        info = message.delivery_info
        log.warning("dead-lettering a message from %s: %s", info.get("exchange"), reason)
        uri = self.container.config[AMQP_URI_CONFIG_KEY]
        with producers[Connection(uri)].acquire(block=True) as producer:  # type: ignore[no-untyped-call]
            producer.publish(
                message.body,
                exchange=Exchange(DEAD_LETTER_EXCHANGE, type="fanout", durable=True),  # type: ignore[no-untyped-call]
                routing_key=info.get("routing_key", ""),
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                delivery_mode=2,
                headers={
                    "x-carepath-reason": reason[:500],
                    "x-original-exchange": info.get("exchange", ""),
                    "x-original-routing-key": info.get("routing_key", ""),
                },
                declare=[Exchange(DEAD_LETTER_EXCHANGE, type="fanout", durable=True)],  # type: ignore[no-untyped-call]
            )


#: `@reaction(source, event_type)`: a reaction handler, checked (see the module's docstring).
reaction: Callable[..., Callable[[Callable[..., None]], Callable[..., None]]] = (
    CheckedEventHandler.decorator
)


def reaction_context(envelope: Envelope, prefix: str) -> CommandContext:
    """The command a reaction issues: its id derives from the event's id (so a redelivery is a
    retry that returns the first result), the actor and clinical time are the event's."""
    return CommandContext(
        command_id=f"{prefix}:{envelope.event_id}",
        occurred_at=envelope.occurred,
        actor=Actor.from_dict(envelope.actor),
        correlation_id=envelope.correlation_id,
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
