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
payload class of the event type), never the raw body.

What happens to a message, so that none stops a reaction and none is dropped or parked
silently:
- applied: acked;
- refused (it fails the check, or the handler raises `NotApplied` with a reason: the access
  policy, the domain): published to `carepath.dead-letter` at once with the reason, and acked;
- failed for a reason that may pass (any other exception: the store down, locked or
  misbehaving): published, as the service's own broker user, to `carepath.retry.<n>`, whose TTL
  (1 s, 10 s, 60 s) sends it back to this reaction's queue only, and acked; after
  `shared.limits.redelivery_attempts()` attempts (8 by default) it is dead-lettered with the
  reason, the attempt count and the reaction's queue in its headers
  (`shared.amqp.dead_letter_headers`), for `python -m shared.deadletters` to list and replay.
A message whose retry or dead letter the broker does not confirm goes back to its queue.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from kombu import Connection, Exchange, Queue  # type: ignore[attr-defined]
from nameko.amqp.publish import Publisher as AmqpPublisher
from nameko.constants import AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY
from nameko.events import EventHandler
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import DependencyProvider
from opentelemetry.trace import Span

from shared import bootstrap, events, limits, ops, tracing
from shared.access.enforce import Resource
from shared.access.policy import Facts, decide
from shared.access.table import rule_for
from shared.actors import Actor
from shared.amqp import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    QUEUE_ARGUMENTS,
    RETRY_LEVELS,
    Origin,
    dead_letter_headers,
    failure,
    origin_of,
    retry_exchange,
    sender_refusal,
)
from shared.domain import CommandContext
from shared.events import ContractError, Envelope
from shared.store import CarepathApplication
from shared.times import utc_iso

log = logging.getLogger(__name__)


def _not_a_handled_failure(record: logging.LogRecord) -> bool:
    """nameko logs every exception a handler raises at ERROR with its traceback, whose text may
    hold SQL parameters (personal data); ReactionHandler logs each outcome itself (the reason
    without them; the traceback at DEBUG), so nameko's line is left out."""
    return not str(record.msg).startswith(("error handling worker", "(expected) error handling"))


logging.getLogger("nameko.containers").addFilter(_not_a_handled_failure)

A = TypeVar("A", bound=CarepathApplication)


class NotApplied(Exception):
    """A reaction could not apply an event; the reason goes with it to the dead-letter queue."""


def _passive(name: str) -> Exchange:
    """An exchange of the definitions, checked passively: a service may publish to it, not
    configure it."""
    return Exchange(name, type="fanout", durable=True, passive=True)  # type: ignore[no-untyped-call]


class ReactionHandler(EventHandler):  # type: ignore[misc]
    """nameko's event handler as every carepath reaction uses it (see the module docstring).
    Its queue is declared as infra/rabbitmq/definitions.json declares it (a quorum queue with a
    delivery limit and carepath.dlx) and never bound or its exchange declared here: the
    definitions bind it, and the service's user may not read another service's exchange."""

    def setup(self) -> None:
        super().setup()
        name: str = self.queue.name  # type: ignore[has-type]
        self.queue = Queue(name, durable=True, queue_arguments=QUEUE_ARGUMENTS)  # type: ignore[no-untyped-call]
        uri = self.container.config[AMQP_URI_CONFIG_KEY]
        ssl = self.container.config.get(AMQP_SSL_CONFIG_KEY)
        #: The broker user this process publishes as (a retry comes back with it).
        self.own_user = str(Connection(uri).userid)  # type: ignore[no-untyped-call]
        self.attempts = limits.redelivery_attempts()
        exchange = _passive(DEAD_LETTER_EXCHANGE)
        self.dead_letters = AmqpPublisher(uri, ssl=ssl, exchange=exchange, declare=[exchange])
        self.retries = {
            n: AmqpPublisher(
                uri, ssl=ssl, exchange=_passive(retry_exchange(n)), mandatory=True,
                declare=[_passive(retry_exchange(n))],
            )
            for n in range(1, RETRY_LEVELS + 1)
        }  # fmt: skip
        HANDLERS.append(self)
        ops.OPS.watch_queues(uri, [name], dead_letters=[DEAD_LETTER_QUEUE])

    def origin(self, message: Any) -> Origin:
        """Where the message was first published and how often it was tried (raises
        ContractError for a message put back by someone other than this service or the
        dead-letter operator)."""
        info = message.delivery_info
        return origin_of(
            str(info.get("exchange", "")),
            str(info.get("routing_key", "")),
            message.properties.get("user_id"),
            message.headers,
            self.own_user,
        )

    @property
    def consuming(self) -> bool:
        """nameko's consumer of this handler's queue is attached on an open channel."""
        consumer = self.queue_consumer._consumers.get(self)
        channel = getattr(consumer, "channel", None)
        return bool(channel is not None and channel.is_open and channel.connection is not None)

    def _outcome(self, outcome: str) -> None:
        ops.REACTION_OUTCOMES.labels(self.container.service_name, self.method_name, outcome).inc()

    def check(self, body: Any, message: Any, origin: Origin) -> Envelope:
        """The one check a message passes before a handler acts (raises ContractError): its
        sender, then the contract."""
        refusal = sender_refusal(origin.exchange, origin.user_id)
        if refusal is not None:
            raise ContractError(refusal)
        return events.parse(body, origin.exchange, origin.routing_key)

    def handle_message(self, body: Any, message: Any) -> None:
        info = message.delivery_info
        origin = Origin(
            str(info.get("exchange", "")),
            str(info.get("routing_key", "")),
            message.properties.get("user_id") or "",
        )
        # The message's span (shared.tracing), a child of its publishing: ended once it is
        # acked, parked, sent to be tried again or returned.
        header = (message.headers or {}).get(tracing.TRACEPARENT)
        span = tracing.consumer_span(header if isinstance(header, str) else None, self.queue.name)
        try:
            origin = self.origin(message)
            envelope = self.check(body, message, origin)
        except Exception as exc:
            log.debug("check failed", exc_info=not isinstance(exc, ContractError))
            reason = (
                str(exc) if isinstance(exc, ContractError) else f"not checked: {type(exc).__name__}"
            )
            self.park(message, origin, reason, origin.attempts + 1)
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
                    message, origin, result, exc_info, span
                ),
            )
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)
            tracing.finish(span, "returned to the queue: the container is stopping")

    def _handled(
        self, message: Any, origin: Origin, result: Any, exc_info: Any, span: Span
    ) -> tuple[Any, Any]:
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            self._outcome("applied")
            tracing.finish(span)
            return result, exc_info
        exc = exc_info[1]
        log.debug("%s raised", self.method_name, exc_info=exc_info)
        attempts = origin.attempts + 1
        if isinstance(exc, NotApplied):  # the handler's own words: refused, not failed
            self.park(message, origin, str(exc), attempts)
            tracing.finish(span, str(exc))
            return result, None
        reason = f"not applied by {self.method_name}: {failure(exc)}"
        if attempts >= self.attempts:
            reason = f"{reason} (gave up after {attempts} attempts)"
            self.park(message, origin, reason, attempts)
        else:
            self.retry(message, origin, reason, attempts)
        tracing.finish(span, reason)
        return result, None  # handled: tried again later, or parked with its reason

    def retry(self, message: Any, origin: Origin, reason: str, attempts: int) -> None:
        """Send the message to carepath.retry.<attempts>, which returns it to this queue after
        its delay, and ack it; if the broker does not confirm, it goes back to its queue."""
        exchange = retry_exchange(attempts)
        trace = (message.headers or {}).get(tracing.TRACEPARENT)  # the retry stays in its trace
        log.warning(
            "%s: attempt %d of %d failed (%s); trying again after %s",
            self.method_name, attempts, self.attempts, reason, exchange,
        )  # fmt: skip
        try:
            self.retries[int(exchange.rsplit(".", 1)[1])].publish(
                message.body,
                routing_key=self.queue.name,
                content_type=message.content_type or "application/octet-stream",
                content_encoding=message.content_encoding or "binary",
                user_id=self.own_user,
                headers=dead_letter_headers(
                    reason, origin, consumer=self.queue.name, attempts=attempts,
                    traceparent=trace if isinstance(trace, str) else None,
                ),
            )  # fmt: skip
        except Exception:
            log.exception("could not send a message to %s; returned it", exchange)
            self.queue_consumer.requeue_message(message)
            return
        self.queue_consumer.ack_message(message)
        self._outcome("retried")

    def park(self, message: Any, origin: Origin, reason: str, attempts: int) -> None:
        """Dead-letter the message as it arrived (its raw body) with the reason, its origin,
        this queue and the attempt count, and ack it; if the dead-letter exchange cannot be
        reached, the message goes back to its queue instead (never lost; the queue's delivery
        limit dead-letters it if this keeps failing)."""
        log.warning("dead-lettering a message from %s: %s", origin.exchange, reason)
        try:
            self.dead_letters.publish(
                message.body,
                routing_key=origin.routing_key,
                content_type=message.content_type or "application/octet-stream",
                content_encoding=message.content_encoding or "binary",
                user_id=self.own_user,  # parked by this service: replayable into this queue
                headers=dead_letter_headers(
                    reason, origin, consumer=self.queue.name, attempts=attempts
                ),
            )  # fmt: skip
        except Exception:
            log.exception("could not dead-letter a message from %s; returned it", origin.exchange)
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
        self.app = bootstrap.application(self.app_class, "store-reactions")
        ops.OPS.check(f"store {self.app_class.name}", self.app.recorder.max_notification_id)

    def stop(self) -> None:
        self.app.close()

    def get_dependency(self, worker_ctx: Any) -> A:
        return self.app
