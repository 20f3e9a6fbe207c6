"""Transactional outbox: the event store's notification log is the outbox.

A command is stored first (and acknowledged to the caller), published later by the relay: the
relay reads notifications after its tracked position, maps them to public envelopes, publishes
them as one confirmed batch and only then advances the position. While RabbitMQ is down the
services keep accepting commands; the relay retries with back-off and catches up, and so it
does while its database is unreachable (shared.retry). A crash
between publish and position update republishes the batch: consumers dedupe on `event_id`.

Each published domain event is mapped to its public payload by the service's explicit mapping
(`services/<service>/contract.py`, `CarepathApplication.contract`), never by copying its
attributes. A stored event whose payload breaks the contract is dead-lettered with the reason
instead of published; a domain event without a mapping stops the relay (a release bug; nothing
is skipped) until it is mapped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from pydantic import ValidationError

from shared import config, ops
from shared.amqp import PublishError
from shared.events import ContractError, Envelope
from shared.events.envelope import describe
from shared.retry import MAX_DELAY, UNAVAILABLE, Backoff
from shared.sql import create_tables, engine
from shared.store import CarepathApplication

log = logging.getLogger(__name__)

_metadata = sa.MetaData()
relay_positions = sa.Table(
    "carepath_relay_positions",
    _metadata,
    sa.Column("relay", sa.String(100), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)


class Publisher(Protocol):
    def publish(self, envelopes: Sequence[Envelope]) -> None: ...

    def park(self, letters: Sequence[tuple[str, str, str]]) -> None: ...

    def idle(self, seconds: float) -> None: ...

    def close(self) -> None: ...


class PositionStore:
    """The relay's position (last published notification id), kept in the service's own
    database beside its events."""

    def __init__(self, sqlalchemy_url: str, relay: str) -> None:
        self._engine = engine(sqlalchemy_url, config.pool("positions"))
        self._relay = relay
        create_tables(_metadata, self._engine)

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    def get(self) -> int:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(relay_positions.c.position).where(relay_positions.c.relay == self._relay)
            ).first()
        return int(row[0]) if row else 0

    def set(self, position: int) -> None:
        """Write the position. On PostgreSQL without waiting for the commit's WAL flush
        (`synchronous_commit` off for this transaction, as SQLite's `synchronous=NORMAL` already
        writes it): a position lost with a database crash is the one case the relay handles
        anyway — the batch after the last durable position is published again and consumers
        dedupe on `event_id` — and the flush was the relay's slowest step on a busy server."""
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            updated = conn.execute(
                relay_positions.update()
                .where(relay_positions.c.relay == self._relay)
                .values(position=position)
            ).rowcount
            if not updated:
                conn.execute(relay_positions.insert().values(relay=self._relay, position=position))

    def close(self) -> None:
        self._engine.dispose()


class BrokenPayload(ContractError):
    """A stored domain event whose payload breaks the contract (for instance stored before a
    bound existed): it is dead-lettered by the relay with the reason, never published."""

    def __init__(self, event_id: str, event_type: str, reason: str) -> None:
        super().__init__(reason)
        self.event_id = event_id
        self.event_type = event_type


@dataclass(frozen=True)
class OutboxBatch:
    envelopes: list[Envelope]
    position: int  # notification id of the last notification read
    read: int  # notifications read (internal ones included)
    #: Stored events that break the contract: (event_id, event_type, reason).
    broken: list[tuple[str, str, str]]


def to_envelope(source: str, app: CarepathApplication, event: Any) -> Envelope:
    """A stored domain event as its public envelope, by the service's explicit mapping
    (app.contract). Raises ContractError for an event with no mapping or a payload that breaks
    the contract: nothing unchecked is published."""
    name = type(event).__name__
    mapping = app.contract.get(name)
    if mapping is None:
        raise ContractError(f"{source} has no contract mapping for its domain event {name}")
    aggregate_id = str(event.originator_id)
    version = int(event.originator_version)
    try:
        payload = mapping(event)
    except ValidationError as exc:
        event_id = Envelope.make_event_id(aggregate_id, version)
        reason = f"{source} {name} breaks its contract: {describe(exc)}"
        raise BrokenPayload(event_id, name, reason) from exc
    meta: dict[str, Any] = event.meta
    return Envelope(
        event_id=Envelope.make_event_id(aggregate_id, version),
        aggregate_id=aggregate_id,
        aggregate_version=version,
        patient=dict(meta["patient"]),
        occurred_at=meta["occurred_at"],
        recorded_at=event.timestamp.isoformat(),
        actor=dict(meta["actor"]),
        correlation_id=meta.get("correlation_id") or meta["command_id"],
        causation_id=meta["command_id"],
        data=payload,
        traceparent=meta.get("traceparent", ""),
    )


def read_envelopes(source: str, app: CarepathApplication, after: int, limit: int) -> OutboxBatch:
    """Envelopes of the notifications after position `after` (at most `limit` read), and the
    new position. Events the application declares internal are read past, never published;
    events whose payload breaks the contract are listed as `broken`. Used by the relay and by
    read-model rebuilds, so both see identical envelopes."""
    notifications = app.recorder.select_notifications(after, limit, inclusive_of_start=False)
    envelopes: list[Envelope] = []
    broken: list[tuple[str, str, str]] = []
    for notification in notifications:
        event = app.mapper.to_domain_event(notification)
        if type(event).__name__ in app.internal_event_types:
            continue
        try:
            envelopes.append(to_envelope(source, app, event))
        except BrokenPayload as exc:
            broken.append((exc.event_id, exc.event_type, str(exc)))
    position = notifications[-1].id if notifications else after
    return OutboxBatch(envelopes, position, len(notifications), broken)


def iter_batches(
    source: str, app: CarepathApplication, batch: int = 1000
) -> Iterator[list[Envelope]]:
    """Every published envelope of the store from the start, a batch at a time."""
    position = 0
    while True:
        read = read_envelopes(source, app, position, batch)
        if not read.read:
            return
        position = read.position
        for event_id, _, reason in read.broken:  # the relay dead-lettered them: not projected
            log.warning("%s event %s left out: %s", source, event_id, reason)
        yield read.envelopes


def iter_all_envelopes(
    source: str, app: CarepathApplication, batch: int = 1000
) -> Iterator[Envelope]:
    for envelopes in iter_batches(source, app, batch):
        yield from envelopes


class OutboxRelay:
    def __init__(
        self,
        source: str,
        app: CarepathApplication,
        publisher: Publisher,
        positions: PositionStore,
        batch_size: int = 500,
    ) -> None:
        self.source = source
        self._app = app
        self._publisher = publisher
        self._positions = positions
        self._batch_size = batch_size
        self._position = positions.get()
        ops.RELAY_POSITION.labels(source).set(self._position)

    @property
    def position(self) -> int:
        return self._position

    def backlog(self) -> int:
        """Stored notifications not published yet (also kept as the backlog gauge)."""
        backlog = max(0, (self._app.recorder.max_notification_id() or 0) - self._position)
        ops.RELAY_BACKLOG.labels(self.source).set(backlog)
        return backlog

    def relay_once(self) -> int:
        """Publish one batch; return how many notifications it read. Raises PublishError."""
        batch = read_envelopes(self.source, self._app, self._position, self._batch_size)
        if not batch.read:
            return 0
        self._publisher.publish(batch.envelopes)
        for event_id, _, reason in batch.broken:
            log.error("relay %s: event %s dead-lettered: %s", self.source, event_id, reason)
        self._publisher.park(batch.broken)
        self._positions.set(batch.position)
        self._position = batch.position
        ops.RELAY_POSITION.labels(self.source).set(batch.position)
        ops.RELAY_PUBLISHED.labels(self.source).inc(len(batch.envelopes))
        ops.RELAY_BATCH.labels(self.source).observe(batch.read)
        if batch.broken:
            ops.RELAY_DEAD_LETTERED.labels(self.source).inc(len(batch.broken))
        return batch.read

    def run(
        self,
        stop: threading.Event,
        idle_wait: float = 0.02,
        max_backoff: float = MAX_DELAY,
        on_published: Callable[[int], None] | None = None,
    ) -> None:
        """Publish until `stop` is set. Nothing that fails stops the relay: a lost database
        (its store or its position), a lost broker and an event without a contract mapping
        are retried with back-off (shared.retry), from the position last written. A batch
        published whose position could not be written is published again: consumers dedupe
        on `event_id`."""
        backoff = Backoff(cap=max_backoff)
        what = f"relay {self.source}"
        while not stop.is_set():
            ops.OPS.beat()
            try:
                published = self.relay_once()
            except ContractError as exc:  # a release bug: keep the position, nothing is lost
                backoff.failed(log, f"{what}: not published", str(exc), stop)
                continue
            except PublishError as exc:
                backoff.failed(log, f"{what}: broker", f"not published ({exc})", stop)
                continue
            except UNAVAILABLE as exc:
                backoff.failed(log, f"{what}: database unavailable", exc, stop)
                continue
            backoff.reset()
            if published:
                log.debug(
                    "relay %s: published %d, position %d", self.source, published, self._position
                )
                if on_published:
                    on_published(published)
                if published == self._batch_size:
                    continue
            self._publisher.idle(idle_wait)
        self._publisher.close()
