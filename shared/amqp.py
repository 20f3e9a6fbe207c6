"""RabbitMQ topology and the two batched legs every service uses.

Topology (declared once, from infra/rabbitmq/definitions.json, by `shared.broker`): one durable
topic exchange per service, `<service>.events`, routing key = event type (nameko's convention,
so `@event_handler("referrals", "ReferralSent")` just works); every consumer's queue a quorum
queue with a delivery limit that dead-letters to `carepath.dlx`, whose queue
`carepath.dead-letter` keeps poison messages. Processes never declare exchanges or bindings:
publishers check their exchange passively, consumers declare their own queue with exactly the
definitions' arguments (a different argument would be refused with PRECONDITION_FAILED).

Trust: each service publishes as its own broker user and sets `user_id` to it (RabbitMQ refuses
a `user_id` that is not the connection's user); consumers accept an event from
`<service>.events` only when its `user_id` is that service's user (`sender_refusal`).

Redelivery (`retry_exchange`, `origin_of`): a consumer that fails on a message for a reason that
may pass (its store down or locked, an unexpected error) does not park it but publishes it, as
its own broker user, to `carepath.retry.<n>` (n = the attempt, up to RETRY_LEVELS): a queue
whose TTL (1 s, 10 s, 60 s in the definitions) dead-letters it through the default exchange back
to the consumer's own queue, and to no other consumer. After `shared.limits.redelivery_attempts()`
attempts it is dead-lettered with its reason. A contract or policy refusal is dead-lettered at
once. A message that comes back (exchange "") is trusted only from the consumer's own broker
user (a retry) or the dead-letter operator's (`python -m shared.deadletters replay`); its origin
and attempt count travel in the headers `dead_letter_headers` writes.

Publishing waits for publisher confirms once per batch, not per message; consuming uses a
prefetch window and acknowledges a whole batch with one `multiple=True` ack.
"""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pika
import sqlalchemy as sa
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError

from shared import config, tracing
from shared.events import ContractError, Envelope
from shared.retry import MAX_DELAY, Backoff

log = logging.getLogger(__name__)

# pika reports a failed connection attempt in about seven ERROR lines and a traceback, and a
# lost connection in several more, then raises. Whoever retries reports each attempt in one
# WARNING line of its own (shared.retry.Backoff.failed), so pika's own lines are left out.
# These loggers are below `pika`, whose level the process's logging setup sets.
for _noisy in ("pika.adapters", "pika.connection", "pika.channel"):
    logging.getLogger(_noisy).setLevel(logging.CRITICAL)

DEAD_LETTER_EXCHANGE = "carepath.dlx"
DEAD_LETTER_QUEUE = "carepath.dead-letter"
SERVICES = (
    "referrals",
    "admissions",
    "discharges",
    "medications",
    "registry",
    "municipal",
    "correspondence",
)
#: Arguments of every consumer's queue, as infra/rabbitmq/definitions.json declares them: a
#: quorum queue that dead-letters a message returned more than 10 times (a consumer that
#: crashes on it again and again) to carepath.dlx.
QUEUE_ARGUMENTS: dict[str, Any] = {
    "x-queue-type": "quorum",
    "x-delivery-limit": 10,
    "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
}
#: The dead-letter queue keeps what it is given: no delivery limit, no dead-letter exchange.
DEAD_LETTER_QUEUE_ARGUMENTS: dict[str, Any] = {"x-queue-type": "quorum"}
#: `carepath.retry.1` .. `carepath.retry.<RETRY_LEVELS>`: an exchange and a queue each, the
#: queue's TTL growing with n (infra/rabbitmq/definitions.json); later attempts wait in the last.
RETRY_PREFIX = "carepath.retry."
RETRY_LEVELS = 3
#: The broker user of `python -m shared.deadletters` (`<prefix>deadletters`): reads the
#: dead-letter queue and republishes into a consumer's queue.
DEADLETTERS_USER = "deadletters"
#: Headers of a dead letter and of a message on its way to be tried again.
REASON_HEADER = "x-carepath-reason"
ATTEMPTS_HEADER = "x-carepath-attempts"
CONSUMER_HEADER = "x-carepath-consumer"
AT_HEADER = "x-carepath-dead-lettered-at"
ORIGINAL_EXCHANGE = "x-original-exchange"
ORIGINAL_ROUTING_KEY = "x-original-routing-key"
ORIGINAL_USER_ID = "x-original-user-id"


#: One message to publish: exchange, routing key, body, properties, mandatory.
_Message = tuple[str, str, bytes, pika.BasicProperties, bool]


class PublishError(Exception):
    """The broker did not confirm a batch (nack, timeout or lost connection). Nothing is
    dropped: the caller keeps its position and publishes the batch again."""


def exchange_name(service: str) -> str:
    return f"{service}.events"


def service_of(exchange: str) -> str | None:
    """The service whose events exchange this is (None for any other exchange)."""
    service = exchange.removesuffix(".events")
    return service if service != exchange and service in config.BROKER_SERVICES else None


def sender_refusal(exchange: str, user_id: str | None) -> str | None:
    """Why a consumer must not trust a message that came from `exchange` with this `user_id`
    property, or None when it came from the exchange's own service.

    RabbitMQ refuses a publish whose `user_id` is not the publishing connection's user, and
    only a service's user may write to its exchange; so a message with the right `user_id`
    was published by that service, whatever its body claims."""
    service = service_of(exchange)
    if service is None:
        return f"not from a service's events exchange (exchange {exchange!r})"
    expected = config.amqp_user(service)
    if user_id != expected:
        got = repr(user_id) if user_id else "no user_id"
        return f"untrusted sender on {exchange}: {got}, expected user_id {expected!r}"
    return None


def connect(uri: str, name: str) -> pika.BlockingConnection:
    """A connection named `name` (shown in the management UI). An `amqps://` URI connects
    over TLS: the broker's certificate is verified against `AMQP_TLS_CA_FILE` (else the
    system's trust store) and must name the URI's host; `AMQP_TLS_CERT_FILE` and
    `AMQP_TLS_KEY_FILE` present a client certificate (shared.config.amqp_tls)."""
    params = pika.URLParameters(uri)
    tls = config.amqp_tls(uri)
    if tls is not None:
        params.ssl_options = pika.SSLOptions(tls_context(tls), server_hostname=params.host)
    params.client_properties = {"connection_name": name}
    params.heartbeat = 30
    params.blocked_connection_timeout = 30
    params.connection_attempts = 1
    params.socket_timeout = 5
    return pika.BlockingConnection(params)


def tls_context(tls: config.ClientTLS) -> ssl.SSLContext:
    """A client context that verifies the broker (certificate chain and host name)."""
    context = ssl.create_default_context(cafile=str(tls.ca) if tls.ca else None)
    if tls.cert and tls.key:
        context.load_cert_chain(tls.cert, tls.key)
    return context


def check_exchange(channel: BlockingChannel, service: str) -> None:
    """Passively: the exchange exists (declared from the definitions). A publisher may write to
    its exchange but not configure it; a missing exchange closes the channel (NOT_FOUND)."""
    channel.exchange_declare(exchange_name(service), passive=True)


def declare_queue(channel: BlockingChannel, queue: str) -> None:
    """A consumer's own queue, with exactly the arguments the definitions give it (so an
    existing queue is accepted); its bindings come from the definitions only (a consumer may
    not bind: that would let it read any exchange)."""
    channel.queue_declare(queue, durable=True, arguments=QUEUE_ARGUMENTS)


def declare_dead_letter(channel: BlockingChannel) -> None:
    """The dead-letter exchange and queue as the definitions declare them (for an operator's or
    a test's admin connection; services only publish to the exchange)."""
    channel.exchange_declare(DEAD_LETTER_EXCHANGE, exchange_type="fanout", durable=True)
    channel.queue_declare(DEAD_LETTER_QUEUE, durable=True, arguments=DEAD_LETTER_QUEUE_ARGUMENTS)
    channel.queue_bind(DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE)


def properties(envelope: Envelope, user_id: str, traceparent: str = "") -> pika.BasicProperties:
    """The message properties of an envelope published by broker user `user_id`; with the
    W3C trace context of its publishing in the header `traceparent` (shared.tracing)."""
    return pika.BasicProperties(
        headers={tracing.TRACEPARENT: traceparent} if traceparent else None,
        message_id=envelope.event_id,
        type=envelope.event_type,
        timestamp=int(envelope.recorded.timestamp()),
        delivery_mode=2,
        content_type="application/json",
        correlation_id=envelope.correlation_id,
        app_id=envelope.source,
        user_id=user_id,
    )


class BatchPublisher:
    """Publishes envelopes to `<service>.events` and returns only when RabbitMQ has confirmed
    the whole batch.

    pika's BlockingChannel waits for a confirm after every single publish (~1 100 msg/s here);
    so confirms are enabled on the underlying asynchronous channel and awaited once per batch
    (one broker round trip per batch).

    Messages are published `mandatory` by default: RabbitMQ confirms a message no queue is
    bound to and drops it, so a returned message fails the batch (the relay keeps its position
    and retries until a consumer's queue exists) instead of being lost. Announcements meant
    for whoever listens now (DeadlineBreached) pass `mandatory=False`.
    """

    def __init__(
        self,
        uri: str,
        service: str,
        confirm_timeout: float = 30.0,
        mandatory: bool = True,
        exchange: str | None = None,
    ) -> None:
        self._uri = uri
        #: The connection's user: RabbitMQ checks `user_id` against it.
        self._user = pika.URLParameters(uri).credentials.username
        self._mandatory = mandatory
        self._service = service
        #: `<service>.events`, unless the publisher writes another exchange (the vendor
        #: delivery writes carepath.vendor: `send`).
        self._exchange = exchange or exchange_name(service)
        self._timeout = confirm_timeout
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._next_tag = 0
        self._acked_upto = 0
        self._nacked = False
        self._returned = 0
        self._next_connect = 0.0
        self._connect_backoff = Backoff(first=0.5, cap=MAX_DELAY)

    @property
    def connected(self) -> bool:
        """The connection to the broker is open (readiness, shared/ops.py)."""
        return self._connection is not None and self._connection.is_open

    def _on_return(self, *_: Any) -> None:
        self._returned += 1

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if isinstance(method, pika.spec.Basic.Nack):
            self._nacked = True
        elif method.multiple:
            self._acked_upto = max(self._acked_upto, method.delivery_tag)
        elif method.delivery_tag == self._acked_upto + 1:
            self._acked_upto = method.delivery_tag
        else:  # out-of-order single ack: count it once everything before it is acked
            self._acked_upto = max(self._acked_upto, method.delivery_tag)

    def _open(self) -> tuple[pika.BlockingConnection, Any]:
        if self._connection is None or self._connection.is_closed or self._channel is None:
            self.close()
            connection = connect(self._uri, f"{self._service}-relay")
            channel = connection.channel()
            channel.exchange_declare(self._exchange, passive=True)  # as check_exchange
            channel._impl.add_on_return_callback(self._on_return)
            selected: list[bool] = []
            channel._impl.confirm_delivery(
                ack_nack_callback=self._on_confirm, callback=lambda _frame: selected.append(True)
            )
            deadline = time.monotonic() + self._timeout
            while not selected and time.monotonic() < deadline:
                connection.process_data_events(time_limit=0.01)
            if not selected:
                raise PublishError("broker did not enable publisher confirms")
            self._connection, self._channel = connection, channel
            self._next_tag = self._acked_upto = 0
        assert self._channel is not None
        return self._connection, self._channel._impl

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Publish the batch; each event stored with a trace context is published in a span
        of that trace (shared.tracing), which the consumers continue from its header."""
        spans = [
            tracing.producer_span(e.traceparent, self._exchange, e.event_id, e.event_type)
            if e.traceparent
            else None
            for e in envelopes
        ]
        error: str | None = "not sent"
        try:
            self._send(
                [
                    (
                        self._exchange,
                        envelope.event_type,
                        envelope.to_json(),
                        properties(envelope, self._user, tracing.traceparent(span) if span else ""),
                        self._mandatory,
                    )
                    for envelope, span in zip(envelopes, spans, strict=True)
                ],
                "the batch",
            )
            error = None
        except PublishError as exc:
            error = f"not confirmed: {exc}"
            raise
        finally:
            for span in spans:
                if span is not None:
                    tracing.finish(span, error)

    def send(self, messages: Sequence[tuple[str, bytes, pika.BasicProperties]]) -> None:
        """Publish (routing key, body, properties) to the publisher's exchange, mandatory, and
        wait once for the broker's confirms of all of them. Raises PublishError."""
        self._send(
            [(self._exchange, key, body, props, self._mandatory) for key, body, props in messages],
            "the batch",
        )

    def _send(self, messages: Sequence[_Message], what: str) -> None:
        """Publish `messages` and wait once for the broker's confirms of all of them. Raises
        PublishError (and drops the connection, so the next attempt starts clean)."""
        if not messages:
            return
        try:
            connection, impl = self._open()
            self._nacked = False
            self._returned = 0
            for exchange, routing_key, body, props, mandatory in messages:
                impl.basic_publish(exchange, routing_key, body, props, mandatory=mandatory)
                self._next_tag += 1
            deadline = time.monotonic() + self._timeout
            while self._acked_upto < self._next_tag and not self._nacked:
                if time.monotonic() > deadline:
                    raise PublishError(f"no confirm within {self._timeout}s")
                connection.process_data_events(time_limit=0.001)
            if self._nacked:
                raise PublishError(f"broker nacked {what}")
            if self._returned:  # a return arrives before the confirm of its message
                raise PublishError(
                    f"{self._returned} unroutable: no queue is bound to {self._exchange} yet"
                )
        except (AMQPError, OSError) as exc:
            self.close()
            raise PublishError(f"{type(exc).__name__}: {exc}") from exc
        except PublishError:
            self.close()
            raise

    def idle(self, seconds: float) -> None:
        """Wait while there is nothing to publish, keeping the connection's heartbeats going
        (a BlockingConnection only answers heartbeats while it processes events)."""
        if self._connection is None or not self._connection.is_open:
            # Nothing to publish and no connection: open one (backing off up to 5 s while the
            # broker is down), so an idle relay knows whether the broker is reachable.
            if time.monotonic() >= self._next_connect:
                try:
                    self._open()
                    self._connect_backoff.reset()
                    return
                except (AMQPError, OSError, PublishError) as exc:
                    self.close()
                    self._next_connect = time.monotonic() + self._connect_backoff.next_delay()
                    log.debug("broker unavailable (%s)", type(exc).__name__)
            time.sleep(seconds)
            return
        try:
            self._connection.process_data_events(time_limit=seconds)
        except (AMQPError, OSError):
            self.close()

    def park(self, letters: Sequence[tuple[str, str, str]]) -> None:
        """Put stored events that cannot be published — (event_id, event_type, reason) — on
        carepath.dead-letter, confirmed, so the relay can move past them without losing them.
        Raises PublishError."""
        self._send(
            [
                (
                    DEAD_LETTER_EXCHANGE,
                    event_type,
                    json.dumps(
                        {"event_id": event_id, "event_type": event_type, "source": self._service}
                    ).encode(),
                    pika.BasicProperties(
                        message_id=event_id,
                        delivery_mode=2,
                        content_type="application/json",
                        headers=dead_letter_headers(
                            reason, Origin(self._exchange, event_type, None)
                        ),
                    ),
                    False,
                )
                for event_id, event_type, reason in letters
            ],
            "the dead letters",
        )

    def close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            with contextlib.suppress(AMQPError, OSError):
                self._connection.close()
        self._connection = None
        self._channel = None


@dataclass(frozen=True, slots=True)
class Delivery:
    delivery_tag: int
    routing_key: str
    exchange: str
    body: bytes
    redelivered: bool
    #: The validated `user_id` property: the broker user that published the message.
    user_id: str | None = None
    headers: Mapping[str, Any] | None = None
    #: The W3C trace context of its publishing (header `traceparent`), if any.
    traceparent: str | None = None


def consume_batches(
    channel: BlockingChannel,
    queue: str,
    max_batch: int = 500,
    max_wait: float = 0.05,
) -> Iterator[list[Delivery]]:
    """Yield batches of up to `max_batch` deliveries, each once it is full or `max_wait`
    seconds after its first message arrived (so a steady trickle is not held back until 500
    have gathered). An empty list is yielded when idle, so the caller can notice a stop
    request. The caller acks a batch (`ack_batch`) after it has committed it."""
    channel.basic_qos(prefetch_count=max_batch)
    batch: list[Delivery] = []
    deadline = 0.0
    while True:
        timeout = max(0.001, deadline - time.monotonic()) if batch else max_wait
        for method, props, body in channel.consume(queue, inactivity_timeout=timeout):
            if method is None:
                break
            if not batch:
                deadline = time.monotonic() + max_wait
            batch.append(
                Delivery(
                    delivery_tag=method.delivery_tag,
                    routing_key=method.routing_key,
                    exchange=method.exchange,
                    body=body,
                    redelivered=method.redelivered,
                    user_id=props.user_id,
                    headers=props.headers,
                    traceparent=traceparent_header(props),
                )
            )
            if len(batch) >= max_batch or time.monotonic() >= deadline:
                break
        yield batch
        batch = []


def traceparent_header(props: pika.BasicProperties) -> str | None:
    value = (props.headers or {}).get(tracing.TRACEPARENT)
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value if isinstance(value, str) else None


def ack_batch(channel: BlockingChannel, batch: Sequence[Delivery]) -> None:
    if batch:
        channel.basic_ack(delivery_tag=max(d.delivery_tag for d in batch), multiple=True)


def dead_letter_headers(
    reason: str,
    origin: Origin,
    *,
    consumer: str | None = None,
    attempts: int | None = None,
    traceparent: str | None = None,
) -> dict[str, Any]:
    """What a dead-lettered message (and a message sent to be tried again, or replayed) carries
    besides its body: why (cut to 500 characters), when, where it came from (its `origin`: the
    exchange, routing key and, when known, the publishing broker user), the consumer that gave
    up on it (its queue) and how often it was tried, for whoever moves it back; and the trace
    it belongs to, where it goes on in it (a retry). The one writer of these headers: every
    consumer (the projector, each reaction), the relay and the dead-letter operator use it."""
    headers: dict[str, Any] = {
        REASON_HEADER: reason[:500],
        ORIGINAL_EXCHANGE: origin.exchange,
        ORIGINAL_ROUTING_KEY: origin.routing_key,
        AT_HEADER: datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if origin.user_id:
        headers[ORIGINAL_USER_ID] = origin.user_id
    if consumer is not None:
        headers[CONSUMER_HEADER] = consumer
    if attempts is not None:
        headers[ATTEMPTS_HEADER] = attempts
    if traceparent:
        headers[tracing.TRACEPARENT] = traceparent
    return headers


def failure(exc: BaseException) -> str:
    """Why a consumer did not apply a message, for its dead letter and its log line: the
    exception's type and first line, without SQL parameters (they hold personal data)."""
    if isinstance(exc, sa.exc.StatementError) and exc.orig is not None:
        detail = str(exc.orig).splitlines()[0] if str(exc.orig) else ""
        return f"{type(exc.orig).__name__}: {detail}"[:300]
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {detail}"[:300]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message was first published (its exchange, routing key and `user_id`), and how
    often a consumer has tried it already (0 unless it came back to be tried again)."""

    exchange: str
    routing_key: str
    user_id: str | None
    attempts: int = 0


def origin_of(
    exchange: str,
    routing_key: str,
    user_id: str | None,
    headers: Mapping[str, Any] | None,
    own_user: str,
) -> Origin:
    """The origin of a message a consumer (connected as `own_user`) received. A message from an
    events exchange is its own origin. One that came through the default exchange was put back
    into this consumer's queue: by the consumer itself after a failure (via carepath.retry.<n>)
    or by the dead-letter operator (a replay); only their `user_id` (RabbitMQ vouches for it) is
    trusted to carry the origin in its headers, which the sender check then judges as if the
    message had just arrived. Raises ContractError for anyone else."""
    if exchange != "":
        return Origin(exchange, routing_key, user_id)
    trusted = (own_user, config.amqp_user(DEADLETTERS_USER))
    if user_id not in trusted:
        got = repr(user_id) if user_id else "no user_id"
        raise ContractError(
            f"put back into {routing_key} by {got}, not by its consumer or operator"
        )
    headers = headers or {}
    original = headers.get(ORIGINAL_EXCHANGE)
    if not isinstance(original, str) or not original:
        raise ContractError(f"put back into {routing_key} without {ORIGINAL_EXCHANGE}")
    original_user = headers.get(ORIGINAL_USER_ID)
    attempts = headers.get(ATTEMPTS_HEADER, 0)
    return Origin(
        original,
        str(headers.get(ORIGINAL_ROUTING_KEY, "")),
        original_user if isinstance(original_user, str) and original_user else None,
        attempts if isinstance(attempts, int) and attempts >= 0 else 0,
    )


def retry_exchange(attempts: int) -> str:
    """Where a message tried `attempts` times waits before its next attempt."""
    return f"{RETRY_PREFIX}{max(1, min(attempts, RETRY_LEVELS))}"


def dead_letter(
    channel: BlockingChannel,
    delivery: Delivery,
    reason: str,
    *,
    origin: Origin | None = None,
    consumer: str | None = None,
    attempts: int | None = None,
    own_user: str | None = None,
) -> None:
    """Park a poison message with the reason; it is acked with its batch, never dropped. A
    consumer parks as its own broker user (`own_user`, RabbitMQ vouches for it): only a letter
    its consumer's service parked is replayed into its queue (`shared.deadletters`)."""
    o = origin or Origin(delivery.exchange, delivery.routing_key, delivery.user_id)
    channel.basic_publish(
        DEAD_LETTER_EXCHANGE,
        o.routing_key,
        delivery.body,
        pika.BasicProperties(
            delivery_mode=2,
            user_id=own_user,
            headers=dead_letter_headers(reason, o, consumer=consumer, attempts=attempts),
        ),
    )


def send_to_retry(
    channel: BlockingChannel,
    delivery: Delivery,
    reason: str,
    *,
    origin: Origin,
    consumer: str,
    own_user: str,
    attempts: int,
) -> None:
    """Send a message tried `attempts` times back to `consumer`'s queue after the delay of
    carepath.retry.<attempts> (published as `own_user`, mandatory: a retry queue that is not
    there fails the publish instead of losing the message)."""
    channel.basic_publish(
        retry_exchange(attempts),
        consumer,
        delivery.body,
        pika.BasicProperties(
            delivery_mode=2,
            content_type="application/json",
            user_id=own_user,
            headers=dead_letter_headers(
                reason,
                origin,
                consumer=consumer,
                attempts=attempts,
                traceparent=delivery.traceparent,  # it stays in the trace of its publishing
            ),
        ),
        mandatory=True,
    )
