"""The projector: every service's events → the pathway read model.

One quorum queue (`pathway.projector`), bound to every `<service>.events` exchange by the
broker's definitions (infra/rabbitmq/definitions.json). A message is projected only when its
`user_id` is the broker user of the service whose exchange it came from; anything else is
dead-lettered with the reason. Messages
are taken in batches (prefetch window), written in one transaction per batch, and acked with
one multiple-ack after the commit. Duplicates are dropped on `event_id`; each patient's new
events are added to the patient's stored fold state (services/pathway/folding), and a patient
whose new event sorts before what the state already holds is folded again from all of their
stored events, so order of arrival cannot matter and a batch costs what it adds, not the
patient's history.

No message stops the projector: each is checked against the event contract first
(`shared.events.parse`, one call per message in `_check`), and one that fails goes to the
dead-letter queue with the reason. When a batch of checked messages still cannot be projected
(the fold or the read model refuses one), the batch is projected again one message per
transaction: the rest are committed; one the rules refuse (`MissingRule`: the rule data has no
such pathway, milestone or rate) is dead-lettered at once with the reason, and one that fails
otherwise is sent to be tried again later through carepath.retry.<n> (as every consumer does,
`shared.amqp.send_to_retry`) and dead-lettered with the exception's reason after
`shared.limits.redelivery_attempts()` attempts.
Only an unreachable read model leaves the batch unacked, to be delivered again once it answers.
Dead letters and retries are confirmed by the broker before the batch is acked.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pika
import sqlalchemy as sa
from opentelemetry.trace import Link, Span
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError
from sqlalchemy.engine import Connection, Engine

from services.pathway import readmodel as rm
from services.pathway.folding import codec
from services.pathway.folding.pathway import NotInOrder, PatientState
from services.pathway.folding.registers import organisations
from services.pathway.rows import Row, answer_rows, replayed, timeline_rows
from shared import amqp, events, limits, ops, sql, tracing
from shared.events import Envelope
from shared.retry import UNAVAILABLE, Backoff
from shared.rules import MissingRule
from shared.times import utc_iso

log = logging.getLogger(__name__)

QUEUE = "pathway.projector"
#: Failures of the read model's database, not of a message (shared.retry.UNAVAILABLE): nothing
#: is acked, the batch is redelivered once the database is back.
#: The fold's refusals of a message (the rules have no answer for it): trying it again cannot
#: help until the rules change, so it is dead-lettered at once (and replayed after the fix).
REFUSALS = (MissingRule,)


def _event_row(e: Envelope) -> dict[str, object]:
    return {
        "event_id": e.event_id,
        "patient_key": rm.patient_key(e.patient),
        "source": e.source,
        "event_type": e.event_type,
        "aggregate_id": e.aggregate_id,
        "aggregate_version": e.aggregate_version,
        "occurred_at": utc_iso(e.occurred_at),
        "recorded_at": utc_iso(e.recorded_at),
        "envelope": rm.envelope_text(e),
    }


def event_rows(envelopes: Sequence[Envelope]) -> list[dict[str, object]]:
    """The `pathway_events` rows of these events."""
    return [_event_row(e) for e in envelopes]


def _chunks(items: Sequence[str], size: int = 500) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _states(conn: Connection, keys: Sequence[str]) -> dict[str, PatientState]:
    """The stored fold states of these patients (those of the current format)."""
    found: dict[str, PatientState] = {}
    s = rm.patient_states
    for chunk in _chunks(keys):
        query = sa.select(s.c.patient_key, s.c.state).where(
            s.c.patient_key.in_(chunk), s.c.format == codec.FORMAT
        )
        for key, text in conn.execute(query):
            found[key] = codec.load(text)
    return found


def _with_state(key: str, state: PatientState, rows: dict[str, list[Row]]) -> dict[str, list[Row]]:
    """The rows and the fold state they came from (kept for the next batch)."""
    text = codec.dump(state)
    return rows | {
        rm.patient_states.name: [{"patient_key": key, "format": codec.FORMAT, "state": text}]
    }


class _Writes:
    """The rows one batch deletes and inserts, written table by table (executemany)."""

    def __init__(self) -> None:
        self.cleared: dict[str, list[str]] = {table.name: [] for table in rm.DERIVED}
        self.rows: dict[str, list[Row]] = {table.name: [] for table in rm.DERIVED}

    def replace(self, key: str, rows: dict[str, list[Row]], tables: Sequence[sa.Table]) -> None:
        for table in tables:
            self.cleared[table.name].append(key)
        for name, table_rows in rows.items():
            self.rows[name].extend(table_rows)

    def write(self, conn: Connection, fresh: bool = False) -> None:
        """Delete the replaced patients' rows, then insert the new ones; `fresh`: the tables
        hold none of these patients' rows (a rebuild's emptied tables), nothing to delete."""
        for table in () if fresh else rm.DERIVED:
            for chunk in _chunks(self.cleared[table.name]):
                conn.execute(table.delete().where(table.c.patient_key.in_(chunk)))
        for table in rm.DERIVED:
            sql.bulk_insert(conn, table, self.rows[table.name])


def apply(conn: Connection, new: Mapping[str, Sequence[Envelope]]) -> None:
    """Add each patient's new events to their stored fold state and write what changed; a
    patient without a current state, or with an event that sorts before what the state holds,
    is folded again from all of their stored events (refold). Appends one change-feed row per
    patient with a pathway (WatchPathway)."""
    keys = sorted(k for k in new if k != rm.DIRECTORY_KEY)
    if rm.DIRECTORY_KEY in new:
        refold_directory(conn, rm.histories(conn, [rm.DIRECTORY_KEY])[rm.DIRECTORY_KEY])
    states = _states(conn, keys)
    writes = _Writes()
    again: list[str] = []
    for key in keys:
        state = states.get(key)
        if state is None:
            again.append(key)
            continue
        start = state.count
        try:
            timeline = state.add(new[key])
        except NotInOrder:
            again.append(key)
            continue
        rows = answer_rows(key, state)
        rows["pathway_timeline"] = timeline_rows(key, start, timeline)
        writes.replace(key, _with_state(key, state, rows), rm.REWRITTEN)
    for chunk in _chunks(again):
        for key, history in rm.histories(conn, chunk).items():
            writes.replace(key, _with_state(key, *replayed(key, history)), rm.DERIVED)
    writes.write(conn)
    patients = writes.rows[rm.patients.name]
    if patients:
        now = utc_iso(datetime.now(UTC))
        conn.execute(
            rm.changes.insert(),
            [
                {
                    "patient_key": p["patient_key"],
                    "municipality_her_id": p["municipality_her_id"],
                    "changed_at": now,
                }
                for p in sorted(patients, key=lambda p: str(p["patient_key"]))
            ],
        )


def refold(conn: Connection, keys: Sequence[str]) -> None:
    """Fold these patients again from all of their stored events (a patient whose stored
    state is missing or of another format)."""
    for chunk in _chunks(keys):
        histories = rm.histories(conn, chunk)
        directory = histories.pop(rm.DIRECTORY_KEY, None)
        if directory is not None:
            refold_directory(conn, directory)
        replayed_writes(histories).write(conn)


def replayed_writes(histories: Mapping[str, Sequence[Envelope]]) -> _Writes:
    """Every row of these patients, each folded from all of their events (a replay)."""
    writes = _Writes()
    for key, history in histories.items():
        writes.replace(key, _with_state(key, *replayed(key, history)), rm.DERIVED)
    return writes


def refold_stale(engine: Engine, chunk: int = 500) -> int:
    """Fold every patient whose stored state is missing or of an older format (after a
    migration or a change of the fold), `chunk` patients per transaction; returns how many."""
    e, s = rm.events, rm.patient_states
    current = sa.select(s.c.patient_key).where(
        s.c.patient_key == e.c.patient_key, s.c.format == codec.FORMAT
    )
    query = (
        sa.select(e.c.patient_key)
        .where(e.c.patient_key != rm.DIRECTORY_KEY, ~current.exists())
        .distinct()
        .order_by(e.c.patient_key)
    )
    with engine.connect() as conn:
        stale = list(conn.execute(query).scalars())
    for keys in _chunks(stale, chunk):
        with engine.begin() as conn:
            refold(conn, keys)
    return len(stale)


def refold_directory(conn: Connection, history: Sequence[Envelope]) -> None:
    """The organisation directory again from all of its events."""
    conn.execute(rm.DIRECTORY.delete())
    entries = organisations(history)
    if entries:
        conn.execute(rm.DIRECTORY.insert(), entries)


def project(conn: Connection, envelopes: Sequence[Envelope]) -> set[str]:
    """Store the new events of a batch and add them to the patients they touch. Returns the
    patient keys changed (empty when everything was a duplicate)."""
    new = store_events(conn, envelopes)
    apply(conn, new)
    return set(new)


def store_events(conn: Connection, envelopes: Sequence[Envelope]) -> dict[str, list[Envelope]]:
    """Store the events not stored yet (deduplicated on event_id); returns them by patient."""
    unique = {e.event_id: e for e in envelopes}
    known: set[str] = set()
    for chunk in _chunks(list(unique)):
        known.update(
            conn.execute(
                sa.select(rm.events.c.event_id).where(rm.events.c.event_id.in_(chunk))
            ).scalars()
        )
    new = [e for event_id, e in unique.items() if event_id not in known]
    if new:
        sql.bulk_insert(conn, rm.events, event_rows(new))
    by_patient: dict[str, list[Envelope]] = {}
    for e in new:
        by_patient.setdefault(rm.patient_key(e.patient), []).append(e)
    return by_patient


def declare_topology(channel: BlockingChannel, queue: str = QUEUE) -> None:
    """The projector's queue, as the definitions declare it (its bindings are theirs: the
    pathway's broker user may not bind a queue to another service's exchange)."""
    amqp.declare_queue(channel, queue)


class Projector:
    """Consumes `pathway.projector` until stopped, reconnecting with back-off."""

    def __init__(
        self,
        engine: Engine,
        amqp_uri: str,
        max_batch: int = 500,
        on_batch: Callable[[set[str]], None] | None = None,
        queue: str = QUEUE,
    ) -> None:
        self._engine = engine
        self._queue = queue
        self._uri = amqp_uri
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._own_user = str(pika.URLParameters(amqp_uri).credentials.username)
        self._attempts = limits.redelivery_attempts()
        self.projected = 0
        #: The spans of the batch being handled, by delivery tag (shared.tracing).
        self._spans: dict[int, Span] = {}
        #: Set once the queue exists and is consumed.
        self.ready = threading.Event()
        #: True while the queue is consumed on an open connection (readiness, shared/ops.py).
        self.consuming = False

    def _origin(self, delivery: amqp.Delivery) -> amqp.Origin:
        """Where the message was first published (raises ContractError for a message put back
        into the queue by someone other than the pathway or the dead-letter operator)."""
        return amqp.origin_of(
            delivery.exchange,
            delivery.routing_key,
            delivery.user_id,
            delivery.headers,
            self._own_user,
        )

    def _check(self, delivery: amqp.Delivery, origin: amqp.Origin) -> Envelope:
        """The one check a message passes before it is projected (raises ContractError): its
        sender (the `user_id` of the exchange's service), then the event contract."""
        refusal = amqp.sender_refusal(origin.exchange, origin.user_id)
        if refusal is not None:
            raise events.ContractError(refusal)
        return events.parse(delivery.body, origin.exchange, origin.routing_key)

    def _reject(
        self,
        channel: BlockingChannel,
        delivery: amqp.Delivery,
        reason: str,
        origin: amqp.Origin | None = None,
    ) -> None:
        log.warning("dead-lettering a message from %s: %s", delivery.exchange, reason)
        attempts = (origin.attempts if origin else 0) + 1
        amqp.dead_letter(
            channel, delivery, reason, origin=origin, consumer=self._queue, attempts=attempts,
            own_user=self._own_user,
        )  # fmt: skip
        ops.PROJECTOR_DEAD_LETTERED.labels(self._queue).inc()
        self._settled(delivery, reason, dead_lettered=True)

    def _settled(self, delivery: amqp.Delivery, reason: str, dead_lettered: bool) -> None:
        span = self._spans.pop(delivery.delivery_tag, None)
        if span is not None:
            span.set_attribute(
                "carepath.dead_lettered" if dead_lettered else "carepath.retried", True
            )
            tracing.finish(span, reason)

    def _failed(
        self, channel: BlockingChannel, delivery: amqp.Delivery, origin: amqp.Origin, reason: str
    ) -> None:
        """A checked message the read model refused: tried again later, or dead-lettered once
        it has been tried `redelivery_attempts()` times."""
        attempts = origin.attempts + 1
        if attempts >= self._attempts:
            self._reject(channel, delivery, f"{reason} (gave up after {attempts} attempts)", origin)
            return
        log.warning(
            "attempt %d of %d to project a message failed (%s); trying again after %s",
            attempts, self._attempts, reason, amqp.retry_exchange(attempts),
        )  # fmt: skip
        amqp.send_to_retry(
            channel, delivery, reason, origin=origin, consumer=self._queue,
            own_user=self._own_user, attempts=attempts,
        )  # fmt: skip
        self._settled(delivery, reason, dead_lettered=False)

    def _handle(self, channel: BlockingChannel, batch: list[amqp.Delivery]) -> None:
        # One span per traced message, a child of its publishing; ended when it is settled.
        self._spans = {
            d.delivery_tag: tracing.consumer_span(d.traceparent, self._queue)
            for d in batch
            if d.traceparent
        }
        try:
            self._settle(channel, batch)
        finally:  # what is left was not settled: the batch goes back to the queue
            for span in self._spans.values():
                tracing.finish(span, "not projected; returned to the queue")
            self._spans = {}

    def _settle(self, channel: BlockingChannel, batch: list[amqp.Delivery]) -> None:
        checked: list[tuple[amqp.Delivery, amqp.Origin, Envelope]] = []
        for delivery in batch:
            origin: amqp.Origin | None = None
            try:
                origin = self._origin(delivery)
                checked.append((delivery, origin, self._check(delivery, origin)))
            except events.ContractError as exc:
                self._reject(channel, delivery, str(exc), origin)
            except Exception as exc:
                log.exception("the check failed on a message from %s", delivery.exchange)
                self._reject(channel, delivery, f"not checked: {type(exc).__name__}", origin)
        for delivery, _origin, envelope in checked:
            span = self._spans.get(delivery.delivery_tag)
            if span is not None:
                span.update_name(f"process {envelope.event_type}")
                span.set_attribute("messaging.message.id", envelope.event_id)
        try:
            with self._writing([d for d, _, _ in checked]), self._engine.begin() as conn:
                changed = project(conn, [e for _, _, e in checked])
            projected = len(checked)
        except UNAVAILABLE:
            raise
        except Exception:
            log.warning("a batch of %d did not project; projecting one at a time", len(checked))
            changed, projected = self._project_one_at_a_time(channel, checked)
        amqp.ack_batch(channel, batch)
        for span in self._spans.values():
            span.end()
        self._spans = {}
        self.projected += projected
        ops.OPS.projected(self._queue, [e.recorded.timestamp() for _, _, e in checked], projected)
        if self._on_batch:
            self._on_batch(changed)

    def _writing(self, checked: Sequence[amqp.Delivery]) -> Any:
        """The span of one read-model transaction, linked to the span of every message in it."""
        spans = [self._spans[d.delivery_tag] for d in checked if d.delivery_tag in self._spans]
        return tracing.tracer.start_as_current_span(
            "write pathway read model",
            links=[Link(span.get_span_context()) for span in spans],
            attributes={"carepath.batch.size": len(checked)},
            record_exception=False,  # SQL errors may quote values (personal data)
            set_status_on_exception=False,
        )

    def _project_one_at_a_time(
        self,
        channel: BlockingChannel,
        checked: list[tuple[amqp.Delivery, amqp.Origin, Envelope]],
    ) -> tuple[set[str], int]:
        """Each message in its own transaction: the ones the fold or the read model rejects are
        tried again later (or dead-lettered with the reason after the last attempt), the rest
        are projected."""
        changed: set[str] = set()
        projected = 0
        for delivery, origin, envelope in checked:
            try:
                with self._writing([delivery]), self._engine.begin() as conn:
                    changed |= project(conn, [envelope])
                projected += 1
            except UNAVAILABLE:
                raise
            except REFUSALS as exc:
                self._reject(channel, delivery, f"not projected: {amqp.failure(exc)}", origin)
            except Exception as exc:
                self._failed(channel, delivery, origin, f"not projected: {amqp.failure(exc)}")
        return changed, projected

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set. A lost broker or read model is waited for with
        back-off (shared.retry) and consuming resumes; nothing acked is lost, nothing unacked
        is kept (the broker delivers it again)."""
        backoff = Backoff()
        while not stop.is_set():
            try:
                connection = amqp.connect(self._uri, "pathway-projector")
            except (AMQPError, OSError) as exc:
                ops.OPS.beat()
                backoff.failed(log, "projector: broker unavailable", exc, stop)
                continue
            reachable = True
            try:
                channel = connection.channel()
                channel.confirm_delivery()  # dead letters and retries confirmed before the ack
                declare_topology(channel, self._queue)
                self.ready.set()
                self.consuming = True
                log.info("consuming %s", self._queue)
                backoff.reset()
                for batch in amqp.consume_batches(channel, self._queue, self._max_batch):
                    ops.OPS.beat()
                    if batch:
                        self._handle(channel, batch)
                    if stop.is_set():
                        break
                channel.cancel()
            except (AMQPError, OSError) as exc:
                backoff.failed(log, "projector: lost the broker", exc, stop)
            except UNAVAILABLE as exc:
                # Nothing was acked: closing the channel returns the batch to the queue.
                log.warning("projector: read model unavailable (%s)", type(exc).__name__)
                reachable = False
            finally:
                self.consuming = False
                if connection.is_open:
                    with contextlib.suppress(AMQPError, OSError):
                        connection.close()
            if not reachable:
                self._await_read_model(stop)

    def _await_read_model(self, stop: threading.Event) -> None:
        """Consume again only once the read model answers: every return of a batch counts
        towards the queue's delivery limit, so an outage must cost one return, not one per
        retry."""
        backoff = Backoff()
        while not stop.is_set():
            ops.OPS.beat()
            try:
                with self._engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
                return
            except UNAVAILABLE as exc:
                backoff.failed(log, "projector: read model unavailable", exc, stop)
