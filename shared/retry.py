"""Waiting out a lost dependency: one back-off for every process that retries the database or
the broker (relays, the projector, the reactions, a process starting before its database).

Exponential, capped and jittered: the n-th delay is drawn from [d/2, d] with
d = min(cap, first · 2ⁿ), so processes that lost the same database at the same moment do not
come back in step, and none waits longer than `cap`. Each failed attempt is reported by its
caller in one WARNING line — what failed, which attempt, the next delay — never a traceback
(`Backoff.failed`).

`UNAVAILABLE` names the exceptions that mean "the database is not reachable now" (a terminated
session, a refused connection, a pool that found none in time) as the libraries raise them:
SQLAlchemy's, eventsourcing's (its recorders wrap psycopg's) and psycopg's own. What is not in
it is a fault of the work, not of the database, and is never retried as an outage.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import eventsourcing.persistence as es
import psycopg
import sqlalchemy as sa

T = TypeVar("T")

#: A database is not reachable now, is locked past its timeout, lost its connection or has no
#: connection free in time: retry with back-off, the work itself is fine. The event stores
#: (eventsourcing wraps the drivers' errors in its own), SQLAlchemy (read model, audit log,
#: policy facts) and the drivers themselves (psycopg_pool's PoolTimeout is a
#: psycopg.OperationalError). The one definition: the gRPC servers answer these UNAVAILABLE
#: (shared.grpc_server), the relays and the projector wait and try again.
UNAVAILABLE: tuple[type[Exception], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,
    es.OperationalError,
    es.InterfaceError,
    sqlite3.OperationalError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)

#: The defaults every process uses: the first retry after about 0.2 s, never more than 5 s.
FIRST_DELAY = 0.2
MAX_DELAY = 5.0


class Backoff:
    """The delays of one retry loop; `reset()` after a success."""

    def __init__(
        self,
        first: float = FIRST_DELAY,
        cap: float = MAX_DELAY,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.first = first
        self.cap = cap
        self._jitter = jitter
        #: Failed attempts since the last success.
        self.attempt = 0

    def next_delay(self) -> float:
        """The delay after one more failed attempt (counts it)."""
        ceiling = min(self.cap, self.first * 2 ** min(self.attempt, 30))
        self.attempt += 1
        return float(ceiling / 2 + self._jitter() * ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0

    def failed(
        self,
        log: logging.Logger,
        what: str,
        exc: BaseException | str,
        stop: threading.Event | None = None,
    ) -> bool:
        """Report a failed attempt in one WARNING line and wait the next delay (or until
        `stop` is set). Returns True when stopped. `exc` is named by its type only when it is
        an exception (a database error's text may quote the statement's parameters)."""
        delay = self.next_delay()
        reason = exc if isinstance(exc, str) else _describe(exc)
        log.warning("%s: %s (attempt %d); next try in %.1fs", what, reason, self.attempt, delay)
        if stop is None:
            time.sleep(delay)
            return False
        return stop.wait(delay)


def _describe(exc: BaseException) -> str:
    """An exception's class, and for the libraries' connection errors their first line, which
    says what went wrong with the connection and carries no data (SQL parameters are never in
    it: SQLAlchemy's statement text is cut off)."""
    cause = getattr(exc, "orig", None) or exc
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {first[:200]}" if first else type(cause).__name__


def until_available(
    attempt: Callable[[], T],
    log: logging.Logger,
    what: str,
    retry_on: tuple[type[BaseException], ...] = UNAVAILABLE,
    stop: threading.Event | None = None,
    backoff: Backoff | None = None,
) -> T:
    """`attempt()` again and again, with back-off, while it raises one of `retry_on`
    (a process starting before its database or broker is up). Raises InterruptedError when
    `stop` is set first."""
    backoff = backoff or Backoff()
    while True:
        try:
            return attempt()
        except retry_on as exc:
            if backoff.failed(log, what, exc, stop):
                raise InterruptedError(what) from exc
