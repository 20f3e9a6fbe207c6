"""The event-sourced application base every domain service uses: store selection from a
database URL, the transcodings our events need, and idempotent command handling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import date
from types import MappingProxyType
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import parse_qsl
from uuid import UUID

import psycopg
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    IntegrityError,
    JSONTranscoder,
    OperationalError,
    Transcoding,
)
from eventsourcing.postgres import PostgresFactory as _EventsourcingPostgresFactory
from eventsourcing.sqlite import SQLiteFactory as _EventsourcingSQLiteFactory

from shared import ops
from shared.batching import GroupWriter, Outcomes
from shared.config import POSTGRES_MAX_IDLE, POSTGRES_PARAMETERS, Pool, StoreSettings, pool
from shared.domain import CarepathAggregate, CommandContext, command_key, handled_key
from shared.errors import Conflict, NotFound
from shared.events import Contract
from shared.limits import snapshot_interval
from shared.snapshots import CarepathSnapshot
from shared.sql import RECONNECT_TIMEOUT, postgres_schema_lock, sqlite_schema_lock

A = TypeVar("A", bound=CarepathAggregate)
R = TypeVar("R")

log = logging.getLogger(__name__)


class PostgresFactory(_EventsourcingPostgresFactory):
    """eventsourcing.postgres, plus the libpq parameters of the store's URL (TLS above all:
    `sslmode=verify-full`, `sslrootcert`, `sslcert`, `sslkey`), which its settings lack, and
    the pool's idle time (shared.config.POOLS). Both are given to the connection pool before
    it opens its first connection.

    The store's tables are created under the schema lock (shared.sql): a service's server,
    relay and reactions start together, and PostgreSQL's catalogue refuses concurrent CREATEs
    of one table (a duplicate `pg_type` row, "tuple concurrently updated")."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        pool = self.datastore.pool
        query = self.env.get(POSTGRES_PARAMETERS)
        if query:
            kwargs = pool.kwargs
            assert isinstance(kwargs, dict)
            kwargs.update(parse_qsl(query, strict_parsing=True))
        max_idle = self.env.get(POSTGRES_MAX_IDLE)
        if max_idle:
            pool.max_idle = float(max_idle)
        pool.reconnect_timeout = RECONNECT_TIMEOUT  # as every pool's (shared.sql)

    def _connect(self) -> psycopg.Connection[Any]:
        given = self.datastore.pool.kwargs
        assert isinstance(given, dict)
        kwargs = dict(given)
        kwargs.pop("row_factory", None)
        kwargs.setdefault("connect_timeout", 5)
        try:
            return psycopg.connect(**kwargs)
        except psycopg.OperationalError as exc:  # as the store's own connections report it
            raise OperationalError(str(exc)) from exc

    def application_recorder(self) -> ApplicationRecorder:
        with postgres_schema_lock(self._connect):
            return super().application_recorder()

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        """The snapshot table, created under the same lock."""
        with postgres_schema_lock(self._connect):
            return super().aggregate_recorder(purpose)


class SQLiteFactory(_EventsourcingSQLiteFactory):
    """eventsourcing.sqlite, its tables created one process at a time (shared.sql's file
    lock): SQLite fails a concurrent creator ("database is locked") instead of waiting."""

    def application_recorder(self) -> ApplicationRecorder:
        with sqlite_schema_lock(self.env.get(self.SQLITE_DBNAME)):
            return super().application_recorder()

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        """The snapshot table, created under the same lock."""
        with sqlite_schema_lock(self.env.get(self.SQLITE_DBNAME)):
            return super().aggregate_recorder(purpose)


def default_pool() -> Pool:
    return pool("store-serve")


#: Attempts for a command that races with another change of the same aggregate.
CONFLICT_RETRIES = 5
#: Locks that serialise, within one process, the commands `transact` is given a `serial` for.
SERIAL_LOCKS = 64


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


def project(aggregate: Any, events: Iterable[Any]) -> Any:
    """The aggregate after `events` (its snapshot or None, then the stored events after it):
    eventsourcing's `project_aggregate` without its per-event `isinstance` check against a
    runtime-checkable protocol, which costs ~0.1 ms an event (measured: most of a load's
    replay) to tell what every event of a carepath store is, an event that can `mutate`."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


#: One command's new events, and the snapshots to store once they are committed.
Events = tuple[Any, ...]
Command = tuple[Events, tuple[CarepathSnapshot, ...]]


class GroupCommit:
    """Saves the aggregates of concurrent commands together: one transaction per batch instead
    of one per command (batch at every hop, shared.batching). A batch that conflicts is retried
    one command at a time so only the conflicting command sees the IntegrityError (and re-runs
    its rules).

    Each command's pending events are taken from its aggregates in the caller's thread and
    queued as events: collecting empties an aggregate, so a retry of a conflicting batch must
    save the events themselves, never the (by then empty) aggregates.

    A command whose events reach a multiple of `interval` on an aggregate of a `snapshotted`
    class also takes that aggregate's snapshot, in the caller's thread from the aggregate in
    hand (no read: its state is the state its events record). The batch's snapshots are
    stored right after the batch's events commit, in one write, and only those of commands
    that committed; a snapshot that fails to store is logged and the commands stand (the next
    one due takes its place).

    One writer at a time also means one writer for SQLite, which otherwise makes concurrent
    writers poll its busy handler."""

    def __init__(
        self,
        save: Callable[..., Any],
        max_batch: int = 500,
        put_snapshots: Callable[[list[CarepathSnapshot]], object] | None = None,
        snapshotted: tuple[type[CarepathAggregate], ...] = (),
        interval: int = 0,
    ) -> None:
        self._save = save
        self._put_snapshots = put_snapshots
        self._snapshotted = snapshotted if put_snapshots is not None else ()
        self._interval = interval
        self._writer = GroupWriter(self._commit, max_batch)

    def save(self, aggregates: tuple[CarepathAggregate, ...]) -> None:
        """Save one command's aggregates together; returns once committed (or raises)."""
        events: list[Any] = []
        snapshots: list[CarepathSnapshot] = []
        for aggregate in aggregates:
            new = aggregate.collect_events()
            events.extend(new)
            if new and self._snapshot_due(aggregate, len(new)):
                snapshots.append(CarepathSnapshot.take(aggregate))
        self._writer.submit((tuple(events), tuple(snapshots)))

    def _snapshot_due(self, aggregate: CarepathAggregate, new: int) -> bool:
        """Whether the command's `new` events on `aggregate` reach a multiple of the interval."""
        if not isinstance(aggregate, self._snapshotted):
            return False
        return aggregate.version // self._interval > (aggregate.version - new) // self._interval

    def _commit(self, batch: list[Command]) -> Outcomes:
        outcomes = self._write(batch)
        snapshots = [
            s for (_, taken), o in zip(batch, outcomes, strict=True) if o is None for s in taken
        ]
        if snapshots and self._put_snapshots is not None:
            try:
                self._put_snapshots(snapshots)
            except Exception as exc:  # the commands are committed; a later snapshot will do
                log.warning("snapshots not stored (%s): %s", type(exc).__name__, exc)
        return outcomes

    def _write(self, batch: list[Command]) -> Outcomes:
        try:
            self._save(*(event for events, _ in batch for event in events))
        except IntegrityError:
            if len(batch) == 1:
                return [IntegrityError("conflict")]
            return [outcome for single in batch for outcome in self._write([single])]
        return [None] * len(batch)


class CarepathApplication(Application[UUID]):
    """An eventsourcing Application with carepath's conventions."""

    name = "carepath"
    #: Event class names kept inside the service (bookkeeping such as indexes): the relay
    #: reads past them and never publishes them.
    internal_event_types: frozenset[str] = frozenset()
    #: How each published domain event maps to its public payload (services/<svc>/contract.py).
    contract: ClassVar[Contract] = MappingProxyType({})
    #: Aggregate classes whose history grows with the patient's life: each gets a snapshot
    #: every `shared.limits.snapshot_interval()` events (shared.snapshots), kept in the store's
    #: snapshot table, so loading one reads its newest snapshot and the events after it.
    snapshotted: ClassVar[tuple[type[CarepathAggregate], ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        snapshots = self.snapshots
        self._group_commit = GroupCommit(
            self.save,
            put_snapshots=snapshots.put if snapshots is not None else None,
            snapshotted=self.snapshotted,
            interval=snapshot_interval(),
        )
        self._serial_locks = tuple(threading.Lock() for _ in range(SERIAL_LOCKS))

    def construct_env(self, name: str, env: Any = None) -> Any:
        """eventsourcing's environment, with its snapshot table when `snapshotted` names a class."""
        if self.snapshotted:
            env = {**(env or {}), "IS_SNAPSHOTTING_ENABLED": "y"}
        return super().construct_env(name, env)

    def save_command(self, *aggregates: CarepathAggregate) -> None:
        """Save what one command changed (one transaction), batched with concurrent commands."""
        self._group_commit.save(aggregates)
        ops.COMMANDS_STORED.labels(self.name).inc()

    @classmethod
    def from_url(cls, url: str, pool: Pool | None = None) -> Self:
        """The application on the store at `url`, with the PostgreSQL pool `pool` (default: a
        gRPC server's, `POOLS["store-serve"]`); its tables are created if missing."""
        env = StoreSettings(url, pool or default_pool()).eventsourcing_env(cls.name)
        return cls(env=env)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    def load(self, cls: type[A], aggregate_id: UUID, what: str, version: int | None = None) -> A:
        try:
            aggregate: CarepathAggregate = self.repository.get(
                aggregate_id, version=version, projector_func=project
            )
        except AggregateNotFoundError as exc:
            raise NotFound(f"{what} not found") from exc
        if not isinstance(aggregate, cls):
            raise NotFound(f"{what} not found")
        return aggregate

    def first_result(self, cls: type[A], aggregate_id: UUID, ctx: CommandContext, what: str) -> A:
        """The aggregate as it stood right after the last event the command recorded
        (NotFound when there is no such aggregate)."""
        key = command_key(ctx.actor.her_id, ctx.command_id)
        version, found = None, False
        for stored in self.repository.event_store.get(aggregate_id):
            found = True
            if handled_key(stored.meta) == key:  # type: ignore[attr-defined]
                version = stored.originator_version
        if not found:  # no such aggregate: one read, not two
            raise NotFound(f"{what} not found")
        return self.load(cls, aggregate_id, what, version=version)

    def transact(
        self,
        attempt: Callable[[], tuple[R, tuple[CarepathAggregate, ...]]],
        what: str,
        serial: UUID | None = None,
    ) -> R:
        """The one load → change → save: `attempt` loads what the command needs and changes
        it, returning the command's result and the aggregates it changed (none: nothing to
        save, such as a repeated command answered with its first result); they are saved
        together, in one transaction batched with concurrent commands (GroupCommit). When a
        concurrent change got there first (the store refuses the events' versions), the
        command is attempted again on reloaded aggregates, so its rules run on what was saved;
        after CONFLICT_RETRIES attempts the caller is told to retry (Conflict).

        `serial` names an aggregate that every command of its kind changes (a patient's index
        of stays): such commands are run one at a time in this process (one of SERIAL_LOCKS
        locks, chosen by the id), so they never conflict with each other however many arrive
        at once; another process's still may, and is attempted again."""
        if serial is None:
            return self._transact(attempt, what)
        with self._serial_locks[serial.int % len(self._serial_locks)]:
            return self._transact(attempt, what)

    def _transact(
        self,
        attempt: Callable[[], tuple[R, tuple[CarepathAggregate, ...]]],
        what: str,
    ) -> R:
        for _ in range(CONFLICT_RETRIES):
            result, changed = attempt()
            if not changed:
                return result
            try:
                self.save_command(*changed)
            except IntegrityError:
                continue
            return result
        raise Conflict(f"{what} changed concurrently; retry the command")

    def create_once(
        self,
        cls: type[A],
        aggregate_id: UUID,
        ctx: CommandContext,
        what: str,
        create: Callable[[], A],
    ) -> A:
        """Create an aggregate whose id derives from the command; a retry returns the first
        (and so does the same command racing with itself: its second attempt finds the first)."""

        def attempt() -> tuple[A, tuple[CarepathAggregate, ...]]:
            try:
                return self.first_result(cls, aggregate_id, ctx, what), ()
            except NotFound:
                aggregate = create()
                return aggregate, (aggregate,)

        return self.transact(attempt, what)

    def change(
        self,
        cls: type[A],
        aggregate_id: UUID,
        ctx: CommandContext,
        what: str,
        change: Callable[[A], None],
        create: Callable[[], A] | None = None,
    ) -> A:
        """Load (or, with `create`, start when there is none yet) → change → save, answering a
        repeated command with its first result and re-running the rules when a concurrent
        change got there first (`transact`)."""

        def attempt() -> tuple[A, tuple[CarepathAggregate, ...]]:
            try:
                aggregate = self.load(cls, aggregate_id, what)
            except NotFound:
                if create is None:
                    raise
                aggregate = create()
            else:
                if aggregate.has_handled(ctx):
                    return self.first_result(cls, aggregate_id, ctx, what), ()
            change(aggregate)
            return aggregate, (aggregate,)

        return self.transact(attempt, what)
