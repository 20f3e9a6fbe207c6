"""What every nameko reaction shares: the checked entrypoint every reaction handler is declared
with (`reaction`), the access policy's word on what a reaction does (`policy_refusal`), the
command a reaction issues (idempotent, from the event), and the application it acts on.

Reactions run in their own processes (never beside a gRPC server):

    python -m shared.run_reactions services.admissions.reactions

which runs the module's nameko services connected as the service's own broker user
(`shared.config.amqp_uri`; the service is the module's package: `admissions`).

`@reaction("admissions", "PatientAdmitted")` is nameko's `@event_handler` with one check in
front (`ReactionHandler.check`): the message's `user_id` must be the broker user of the service
whose exchange it came from (`shared.amqp.sender_refusal`), and its body must keep the event
contract, its source the exchange's service and its event type the routing key
(`shared.events.parse`). The handler then receives the typed `Envelope` (its `data` is the
payload class of the event type), never the raw body. A message that fails the check, and a
message the handler raises on (`NotApplied` with a reason, or any other error), is published
to `carepath.dead-letter` with the reason and acked: no message stops a reaction, and none is
silently dropped. Only an unavailable store (the database down) returns the message to the
queue, to be tried again (after the queue's delivery limit RabbitMQ dead-letters it).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from kombu import Exchange, Queue  # type: ignore[attr-defined]
from nameko.amqp.publish import Publisher as AmqpPublisher
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.events import EventHandler
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import DependencyProvider
from opentelemetry.trace import Span

from shared import config, events, ops, tracing
from shared.access.enforce import Resource
from shared.access.policy import Facts, decide
from shared.access.table import rule_for
from shared.amqp import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    QUEUE_ARGUMENTS,
    dead_letter_headers,
    sender_refusal,
)
from shared.auth import Actor
from shared.domain import CommandContext
from shared.events import ContractError, Envelope
from shared.store import CarepathApplication
from shared.times import utc_iso

log = logging.getLogger(__name__)

A = TypeVar("A", bound=CarepathApplication)

#: Failures of a reaction's store, not of the event: the event is returned to the queue.
UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError)


class NotApplied(Exception):
    """A reaction could not apply an event; the reason goes with it to the dead-letter queue."""


def _dead_letter_exchange() -> Exchange:
    """carepath.dlx, checked passively: a service may publish to it, not configure it."""
    return Exchange(DEAD_LETTER_EXCHANGE, type="fanout", durable=True, passive=True)  # type: ignore[no-untyped-call]


class ReactionHandler(EventHandler):  # type: ignore[misc]
    """nameko's event handler as every carepath reaction uses it (see the module docstring).
    Its queue is declared as infra/rabbitmq/definitions.json declares it (a quorum queue with a
    delivery limit and carepath.dlx) and never bound or its exchange declared here: the
    definitions bind it, and the service's user may not read another service's exchange."""

    def setup(self) -> None:
        super().setup()
        name: str = self.queue.name  # type: ignore[has-type]
        self.queue = Queue(name, durable=True, queue_arguments=QUEUE_ARGUMENTS)  # type: ignore[no-untyped-call]
        exchange = _dead_letter_exchange()
        self.dead_letters = AmqpPublisher(
            self.container.config[AMQP_URI_CONFIG_KEY], exchange=exchange, declare=[exchange]
        )
        HANDLERS.append(self)
        ops.OPS.watch_queues(
            self.container.config[AMQP_URI_CONFIG_KEY], [name], dead_letters=[DEAD_LETTER_QUEUE]
        )

    @property
    def consuming(self) -> bool:
        """nameko's consumer of this handler's queue is attached on an open channel."""
        consumer = self.queue_consumer._consumers.get(self)
        channel = getattr(consumer, "channel", None)
        return bool(channel is not None and channel.is_open and channel.connection is not None)

    def _outcome(self, outcome: str) -> None:
        ops.REACTION_OUTCOMES.labels(self.container.service_name, self.method_name, outcome).inc()

    def check(self, body: Any, message: Any) -> Envelope:
        """The one check a message passes before a handler acts (raises ContractError): its
        sender, then the contract."""
        info = message.delivery_info
        refusal = sender_refusal(str(info.get("exchange", "")), message.properties.get("user_id"))
        if refusal is not None:
            raise ContractError(refusal)
        return events.parse(body, info["exchange"], info["routing_key"])

    def handle_message(self, body: Any, message: Any) -> None:
        # The message's span (shared.tracing), a child of its publishing: ended once it is
        # acked, parked or returned.
        header = (message.headers or {}).get(tracing.TRACEPARENT)
        span = tracing.consumer_span(header if isinstance(header, str) else None, self.queue.name)
        try:
            envelope = self.check(body, message)
        except Exception as exc:
            log.debug("check failed", exc_info=not isinstance(exc, ContractError))
            reason = (
                str(exc) if isinstance(exc, ContractError) else f"not checked: {type(exc).__name__}"
            )
            self.park(message, reason)
            tracing.finish(span, reason)
            return
        span.update_name(f"process {envelope.event_type}")
        span.set_attribute("messaging.message.id", envelope.event_id)
        # The worker continues the span (`reaction`): its commands are stored in this trace.
        traced = dataclasses.replace(envelope, traceparent=tracing.traceparent(span))
        try:
            self.container.spawn_worker(
                self,
                (traced,),
                {},
                context_data=self.unpack_message_headers(message),
                handle_result=lambda ctx, result=None, exc_info=None: self._handled(
                    message, result, exc_info, span
                ),
            )
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)
            tracing.finish(span, "returned to the queue: the container is stopping")

    def _handled(self, message: Any, result: Any, exc_info: Any, span: Span) -> tuple[Any, Any]:
        if exc_info is not None and isinstance(exc_info[1], UNAVAILABLE):
            # The store is down, not the message wrong: it goes back to the queue, untouched.
            log.warning("%s: store unavailable; event returned to the queue", self.method_name)
            self.queue_consumer.requeue_message(message)
            self._outcome("retried")
            tracing.finish(span, "store unavailable; returned to the queue")
            return result, None
        if exc_info is not None:
            exc = exc_info[1]
            reason = (
                str(exc)
                if isinstance(exc, NotApplied)  # the handler's own words
                else f"not applied by {self.method_name}: {type(exc).__name__}: {exc}"
            )
            self.park(message, reason)
            tracing.finish(span, reason)
            return result, None  # handled: parked with its reason
        self.queue_consumer.ack_message(message)
        self._outcome("applied")
        tracing.finish(span)
        return result, exc_info

    def park(self, message: Any, reason: str) -> None:
        """Dead-letter the message as it arrived (its raw body) with the reason, and ack it; if
        the dead-letter exchange cannot be reached, the message goes back to its queue instead
        (never lost; the queue's delivery limit dead-letters it if this keeps failing)."""
        info = message.delivery_info
        exchange = str(info.get("exchange", ""))
        routing_key = str(info.get("routing_key", ""))
        log.warning("dead-lettering a message from %s: %s", exchange, reason)
        try:
            self.dead_letters.publish(
                message.body,
                routing_key=routing_key,
                content_type=message.content_type or "application/octet-stream",
                content_encoding=message.content_encoding or "binary",
                headers=dead_letter_headers(
                    reason, exchange, routing_key, message.properties.get("user_id") or ""
                ),
            )
        except Exception:
            log.exception("could not dead-letter a message from %s; returned it", exchange)
            self.queue_consumer.requeue_message(message)
            self._outcome("retried")
            return
        self.queue_consumer.ack_message(message)
        self._outcome("dead_lettered")


#: The process's reaction handlers, once their containers set them up (readiness).
HANDLERS: list[ReactionHandler] = []


def consuming() -> bool:
    """Every reaction handler of the process consumes its queue (False before they start)."""
    return bool(HANDLERS) and all(handler.consuming for handler in HANDLERS)


def reaction(
    source: str, event_type: str, **options: Any
) -> Callable[[Callable[[Any, Envelope], None]], Callable[[Any, Envelope], None]]:
    """`@reaction(source, event_type)`: a reaction handler, checked (see the module's
    docstring), that runs in its message's trace (the logs and the commands it issues carry
    it)."""

    def decorate(handler: Callable[[Any, Envelope], None]) -> Callable[[Any, Envelope], None]:
        @functools.wraps(handler)
        def traced(service: Any, event: Envelope) -> None:
            with tracing.continued(event.traceparent):
                handler(service, event)

        entrypoint: Callable[[Any, Envelope], None] = ReactionHandler.decorator(
            source, event_type, **options
        )(traced)
        return entrypoint

    return decorate


def policy_refusal(call: str, event: Envelope, resource: Resource | None) -> str | None:
    """Why the access policy does not let the organisation that caused `event` have a
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
    if resource.patient != event.patient:
        return f"{call}: the event's patient is not the resource's"
    actor = Actor.from_dict(event.actor)
    at = utc_iso(event.recorded)
    decision = decide(rule, actor, resource.patient, Facts(relationships=resource.parties), at)
    if decision.allowed:
        return None
    return f"{call} refused to {actor.org_kind.value} {actor.her_id}: {decision.reason}"


def reaction_context(envelope: Envelope, prefix: str) -> CommandContext:
    """The command a reaction issues: its id derives from the event's id (so a redelivery is a
    retry that returns the first result), the actor and clinical time are the event's, and it
    belongs to the event's trace (the reaction's span)."""
    command_id = f"{prefix}:{envelope.event_id}"
    tracing.handling(command_id, envelope.correlation_id)
    return CommandContext(
        command_id=command_id,
        occurred_at=envelope.occurred,
        actor=Actor.from_dict(envelope.actor),
        correlation_id=envelope.correlation_id,
        traceparent=tracing.traceparent() or envelope.traceparent,
    )


class ApplicationProvider(DependencyProvider, Generic[A]):  # type: ignore[misc]
    """A domain service's application on its configured store (one per container)."""

    def __init__(self, app_class: type[A]) -> None:
        self.app_class = app_class

    def setup(self) -> None:
        self.app = self.app_class.from_url(config.database_url(self.app_class.name))
        ops.OPS.check(f"store {self.app_class.name}", self.app.recorder.max_notification_id)

    def stop(self) -> None:
        self.app.close()

    def get_dependency(self, worker_ctx: Any) -> A:
        return self.app
