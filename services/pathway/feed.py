"""The change feed behind WatchPathway: one poller per process for every open stream.

Each stream used to query `pathway_changes` itself four times a second, so N open viewer pages
cost 4N queries a second. Now one thread reads the feed once per tick while any stream is
open, and hands each change to the streams watching its patient, or every patient (a
municipality's stream, which shows only the changes the access policy lets it see).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from services.pathway import views

log = logging.getLogger(__name__)

#: How often the feed is read while any stream is open.
POLL_SECONDS = 0.25


@dataclass(eq=False)
class Subscription:
    """One stream's interest: a patient (None: every patient), from a position in the feed."""

    patient_key: str | None
    after: int
    changes: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)

    def wants(self, change: Any) -> bool:
        if change["sequence"] <= self.after:
            return False
        return self.patient_key is None or bool(change["patient_key"] == self.patient_key)

    def take(self, timeout: float) -> list[Any]:
        """The changes that arrived, waiting up to `timeout` for the first."""
        try:
            found = [self.changes.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                found.append(self.changes.get_nowait())
            except queue.Empty:
                return found


class ChangeFeed:
    def __init__(self, engine: Engine, poll_seconds: float = POLL_SECONDS) -> None:
        self._engine = engine
        self._poll = poll_seconds
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()
        self._thread: threading.Thread | None = None
        self._sequence = 0

    def subscribe(self, patient_key: str | None) -> Subscription:
        """Changes after now (the feed's latest position) of one patient (None: all)."""
        latest = views.latest_change(self._engine)
        subscription = Subscription(patient_key, latest)
        with self._lock:
            self._subscriptions.add(subscription)
            if self._thread is None:  # the poller runs only while someone watches
                self._sequence = latest
                self._thread = threading.Thread(target=self._run, name="change-feed", daemon=True)
                self._thread.start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._subscriptions:
                    self._thread = None
                    return
            try:
                changes = views.changes_after(self._engine, self._sequence)
            except Exception as exc:  # e.g. the database restarting: keep the streams, retry
                log.warning("change feed not read (%s); retrying", type(exc).__name__)
                time.sleep(self._poll * 4)
                continue
            if changes:
                self._sequence = int(changes[-1]["sequence"])
                with self._lock:
                    subscriptions = list(self._subscriptions)
                for change in changes:
                    for subscription in subscriptions:
                        if subscription.wants(change):
                            subscription.changes.put(change)
            if len(changes) < views.CHANGES_PAGE:
                time.sleep(self._poll)
