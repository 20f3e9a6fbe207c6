"""The vendor delivery: every service's events → each subscription's own queue, minimised.

One quorum queue, `streams.delivery` (single active consumer), bound to every
`<service>.events` exchange by the broker's definitions; this process reads it as the broker
user `<prefix>streams`, which may write only the vendor exchange `carepath.vendor` (and
carepath's dead-letter and retry exchanges). Batch at every hop:

1. a batch of deliveries is taken (prefetch window); each message is trusted only when its
   `user_id` is the broker user of the service whose exchange it came from (as the projector
   does, `shared.amqp.sender_refusal`) and it passes the event contract
   (`shared.events.parse`); anything else is dead-lettered with the reason, at once;
2. the batch's events get their positions in the stream log (one transaction) — every event
   a vendor may receive, wanted by a subscription now or not, so the stream log is the whole
   history a subscription created later replays;
3. (services/streams/selection.py, the same decision as the gRPC stream's) per
   subscription that wants an event (event type, source; never a patient's blocks), the
   patients its served organisations may see now are asked of the access facts, once per
   organisation and batch (`FactStore.members`: a care relationship under the access policy,
   no block of that organisation by the patient — who lives where comes from the registry,
   never from the event), and a patient's block of the vendor's own organisation holds too;
4. every delivery of a patient's event is put on the audit log (one transaction for the
   batch: which subscription, which patient, which event, when, on what basis and purpose);
5. the minimised messages are published to `carepath.vendor`, routed to each subscription's
   queue, with publisher confirms awaited once for the batch; then the batch is acked.

A publish that is not confirmed leaves the batch unacked (delivered again: vendors dedupe on
`event_id` or `position`); a database that cannot be reached too. No message stops the
process. Subscriptions are read from the streams store again whenever it changed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError
from sqlalchemy.engine import Engine

from services.streams import streamlog
from services.streams.application import StreamsApplication
from services.streams.filters import Route, loggable, vendor_contract
from services.streams.provisioning import VENDOR_EXCHANGE
from services.streams.selection import Selection, content_type, message_of
from shared import amqp, events, ops
from shared.access.facts import FactStore
from shared.amqp import BatchPublisher, PublishError
from shared.audit.log import AuditLog, Entry
from shared.events import Envelope
from shared.retry import UNAVAILABLE, Backoff

log = logging.getLogger(__name__)

QUEUE = "streams.delivery"
#: Arguments of the delivery queue, as the definitions declare it: one consumer at a time, so
#: the stream log has one writer and positions follow commit order.
QUEUE_ARGUMENTS = {**amqp.QUEUE_ARGUMENTS, "x-single-active-consumer": True}
POSITION_HEADER = "x-carepath-position"
CONTRACT_HEADER = "x-carepath-contract"


def declare_queue(channel: BlockingChannel, queue: str = QUEUE) -> None:
    channel.queue_declare(queue, durable=True, arguments=QUEUE_ARGUMENTS)


class Delivery:
    def __init__(
        self,
        app: StreamsApplication,
        log_engine: Engine,
        facts: FactStore,
        audit: AuditLog,
        uri: str,
        queue: str = QUEUE,
        max_batch: int = 500,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._app = app
        self._log = log_engine
        self._selection = Selection(facts, clock)
        self._audit = audit
        self._uri = uri
        self._queue = queue
        self._max_batch = max_batch
        self._own_user = pika.URLParameters(uri).credentials.username
        self._publisher = BatchPublisher(uri, "streams", exchange=VENDOR_EXCHANGE)
        self._routes: list[Route] = []
        self._head = -1
        self.ready = threading.Event()
        #: Consuming on an open connection now (readiness).
        self.consuming = False
        self.delivered = 0

    # --- subscriptions ---------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """The subscriptions, read again when the streams store has changed."""
        head = self._app.head()
        if head != self._head:
            self._routes = [Route.of(s) for s in self._app.subscriptions()]
            self._head = head
            log.info("delivering to %d subscriptions", len(self._routes))
        return self._routes

    # --- one batch -------------------------------------------------------------------------

    def _check(self, d: amqp.Delivery) -> Envelope:
        origin = amqp.origin_of(d.exchange, d.routing_key, d.user_id, d.headers, self._own_user)
        refusal = amqp.sender_refusal(origin.exchange, origin.user_id)
        if refusal is not None:
            raise events.ContractError(refusal)
        return events.parse(d.body, origin.exchange, origin.routing_key)

    def _reject(self, channel: BlockingChannel, d: amqp.Delivery, reason: str) -> None:
        log.warning("dead-lettering a message from %s: %s", d.exchange or "(requeued)", reason)
        amqp.dead_letter(channel, d, reason, consumer=self._queue, own_user=self._own_user)

    def handle(self, channel: BlockingChannel, batch: Sequence[amqp.Delivery]) -> None:
        pairs: list[tuple[amqp.Delivery, Envelope]] = []
        for d in batch:
            try:
                pairs.append((d, self._check(d)))
            except events.ContractError as exc:
                self._reject(channel, d, str(exc))
            except Exception as exc:
                log.exception("the check failed on a message from %s", d.exchange)
                self._reject(channel, d, f"not checked: {amqp.failure(exc)}")
        checked = [e for _, e in pairs]
        try:
            messages, entries = self.plan(checked)
        except UNAVAILABLE:
            raise
        except Exception:
            log.warning("a batch of %d was not planned; one at a time", len(checked))
            messages, entries = [], []
            for d, envelope in pairs:
                try:
                    one, rows = self.plan([envelope])
                except UNAVAILABLE:
                    raise
                except Exception as exc:
                    self._reject(channel, d, f"not delivered: {amqp.failure(exc)}")
                    continue
                messages.extend(one)
                entries.extend(rows)
        self._audit.record(entries)  # nothing is delivered that is not on record
        self._publisher.send(messages)
        amqp.ack_batch(channel, list(batch))
        self.delivered += len(messages)
        ops.OPS.projected(self._queue, [e.recorded.timestamp() for e in checked], len(checked))

    def plan(
        self, checked: Sequence[Envelope]
    ) -> tuple[list[tuple[str, bytes, pika.BasicProperties]], list[Entry]]:
        """The messages of a batch of checked events, and their audit rows (the decision is
        `Selection.select`'s, the same as the gRPC stream's)."""
        routes = self.routes()
        # Every event a vendor may ever receive is numbered, whether or not a subscription
        # wants it now: a subscription created later replays the whole history from its
        # stream (a patient's blocks are never delivered, so never logged).
        positions = streamlog.append(self._log, [e for e in checked if loggable(e)])
        wanted = [(e, [r for r in routes if r.wants(e)]) for e in checked]
        wanted = [(e, rs) for e, rs in wanted if rs]
        if not wanted:
            return [], []
        messages: list[tuple[str, bytes, pika.BasicProperties]] = []
        entries: list[Entry] = []
        now = datetime.now(UTC)
        for s in self._selection.select(wanted, positions):
            messages.append(
                (
                    s.route.queue,
                    message_of(s, now),
                    _properties(s.envelope, s.position, self._own_user, s.route),
                )
            )
            if s.entry is not None:
                entries.append(s.entry)
        return messages, entries

    # --- the loop --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set; a lost broker or database is waited for with back-off
        and nothing unacked is lost (the broker delivers it again)."""
        backoff = Backoff()
        while not stop.is_set():
            try:
                connection = amqp.connect(self._uri, "streams-delivery")
            except (AMQPError, OSError) as exc:
                ops.OPS.beat()
                backoff.failed(log, "delivery: broker unavailable", exc, stop)
                continue
            try:
                channel = connection.channel()
                channel.confirm_delivery()  # dead letters confirmed before the batch's ack
                declare_queue(channel, self._queue)
                self.ready.set()
                self.consuming = True
                log.info("consuming %s", self._queue)
                backoff.reset()
                for batch in amqp.consume_batches(channel, self._queue, self._max_batch):
                    ops.OPS.beat()
                    if batch:
                        self.handle(channel, batch)
                    else:
                        self.routes()  # notice a new subscription while idle
                    if stop.is_set():
                        break
                channel.cancel()
            except (AMQPError, OSError, PublishError) as exc:
                backoff.failed(log, "delivery: broker", exc, stop)
            except UNAVAILABLE as exc:
                backoff.failed(log, "delivery: database unavailable", exc, stop)
            finally:
                self.consuming = False
                if connection.is_open:
                    with contextlib.suppress(AMQPError, OSError):
                        connection.close()
        self._publisher.close()


def _properties(envelope: Envelope, position: int, user: str, route: Route) -> pika.BasicProperties:
    """The vendor trusts the message because `user_id` is carepath's streams user (RabbitMQ
    refuses any other on this connection). `content_type` says the subscription's format
    (`application/json`, or FHIR R5 notifications' `application/fhir+json; fhirVersion=5.0`)."""
    return pika.BasicProperties(
        message_id=envelope.event_id,
        type=envelope.event_type,
        timestamp=int(envelope.recorded.timestamp()),
        delivery_mode=2,
        content_type=content_type(route),
        correlation_id=envelope.correlation_id,
        app_id=envelope.source,
        user_id=user,
        headers={
            POSITION_HEADER: position,
            CONTRACT_HEADER: vendor_contract(route.contract_version),
        },
    )
