"""What every nameko reaction shares: the entrypoint that accepts only its source service's
events (`event_handler`), the access policy's word on what a reaction does (`policy_refusal`),
the command a reaction issues (idempotent, from the event), the application it acts on, a place
for events it cannot apply, and the process entry point.

Reactions run in their own processes (never beside a gRPC server):

    python -m shared.run_reactions services.admissions.reactions

which runs the module's nameko services connected as the service's own broker user
(`shared.config.amqp_uri`; the service is the module's package: `admissions`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

from kombu import Exchange, Queue  # type: ignore[attr-defined]
from nameko.amqp.publish import Publisher as AmqpPublisher
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.messaging import Publisher

from shared import config
from shared.access.enforce import Resource
from shared.access.policy import Facts, decide
from shared.access.table import rule_for
from shared.amqp import DEAD_LETTER_EXCHANGE, QUEUE_ARGUMENTS, sender_refusal
from shared.auth import Actor
from shared.domain import CommandContext
from shared.store import CarepathApplication
from shared.times import utc_iso

log = logging.getLogger(__name__)


def _dead_letter_exchange() -> Exchange:
    """carepath.dlx, checked passively: a service may publish to it, not configure it."""
    return Exchange(DEAD_LETTER_EXCHANGE, type="fanout", durable=True, passive=True)  # type: ignore[no-untyped-call]


class TrustedEventHandler(EventHandler):  # type: ignore[misc]
    """nameko's `@event_handler`, as every carepath reaction uses it:

    - an event is handed to the handler only when its `user_id` is the broker user of the
      service whose exchange it came from (`shared.amqp.sender_refusal`); anything else is
      put on the dead-letter queue with the reason, and acked;
    - the queue is declared as infra/rabbitmq/definitions.json declares it (a quorum queue with
      a delivery limit and carepath.dlx) and never bound or its exchange declared here: the
      definitions bind it, and the service's user may not read another service's exchange;
    - a handler that raises returns the event to the queue (`requeue_on_error`): it is tried
      again, and after the queue's delivery limit RabbitMQ dead-letters it.
    """

    def __init__(self, source_service: str, event_type: str, **kwargs: Any) -> None:
        kwargs.setdefault("requeue_on_error", True)
        super().__init__(source_service, event_type, **kwargs)

    def setup(self) -> None:
        super().setup()
        name: str = self.queue.name  # type: ignore[has-type]
        self.queue = Queue(name, durable=True, queue_arguments=QUEUE_ARGUMENTS)  # type: ignore[no-untyped-call]
        exchange = _dead_letter_exchange()
        self.dead_letters = AmqpPublisher(
            self.container.config[AMQP_URI_CONFIG_KEY], exchange=exchange, declare=[exchange]
        )

    def handle_message(self, body: Any, message: Any) -> None:
        exchange = str(message.delivery_info.get("exchange", ""))
        refusal = sender_refusal(exchange, message.properties.get("user_id"))
        if refusal is None:
            super().handle_message(body, message)
            return
        log.warning("dead-lettering a message from %s: %s", exchange, refusal)
        routing_key = str(message.delivery_info.get("routing_key", ""))
        try:
            self.dead_letters.publish(
                message.body,
                routing_key=routing_key,
                content_type=message.content_type or "application/octet-stream",
                content_encoding=message.content_encoding or "binary",
                headers={
                    "x-carepath-reason": refusal[:500],
                    "x-original-exchange": exchange,
                    "x-original-routing-key": routing_key,
                    "x-original-user-id": message.properties.get("user_id") or "",
                },
            )
        except Exception:  # the queue's delivery limit dead-letters it if this keeps failing
            log.exception("could not dead-letter a message from %s; returned it", exchange)
            self.queue_consumer.requeue_message(message)
            return
        self.queue_consumer.ack_message(message)


#: `@event_handler(source_service, event_type)` for every carepath reaction.
event_handler = TrustedEventHandler.decorator


def policy_refusal(call: str, envelope: dict[str, Any], resource: Resource | None) -> str | None:
    """Why the access policy does not let the organisation that caused `envelope` have a
    reaction act on `resource` as the gRPC call `call` ("AdmissionService/CloseStay") would;
    None when it does.

    The event is trusted as its service's (its `user_id` was checked), so its actor is the
    organisation that service admitted; what that organisation may make happen elsewhere is the
    policy's decision, on the resource's own parties (the hospitals of this stay, the receiver
    of this referral) at the time the event was recorded."""
    rule = rule_for(f"/carepath.v1.{call}")
    if rule is None:
        return f"{call}: no rule in the access table"
    if resource is None:
        return f"{call}: no such resource"
    if resource.patient != envelope["patient"]:
        return f"{call}: the event's patient is not the resource's"
    actor = Actor.from_dict(envelope["actor"])
    at = utc_iso(datetime.fromisoformat(envelope["recorded_at"]))
    decision = decide(rule, actor, resource.patient, Facts(relationships=resource.parties), at)
    if decision.allowed:
        return None
    return f"{call} refused to {actor.org_kind.value} {actor.her_id}: {decision.reason}"


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
        super().__init__(exchange=_dead_letter_exchange())

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
