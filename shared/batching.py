"""Group writes: what concurrent callers want written goes to the store together, one batch
(one transaction) instead of one per caller — batch at every hop — and each caller returns once
its own part is written, or raises what kept it from being written.

Leader and followers, as databases do their group commit: a caller that finds no write in
progress writes itself (no hand-over to another thread: the common case of one caller at a time
costs nothing extra); callers that arrive while it writes wait, and the next batch takes them
all. When the leader's own part is written it hands the lead to the first caller still waiting.
One writer at a time also means one writer for SQLite, which otherwise makes concurrent writers
poll its busy handler.

Used by the event stores (shared.store.GroupCommit) and the audit log (shared.audit.log).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

#: What a batch's writer says of each part: None (written) or the error that kept it out.
Outcomes = Sequence[BaseException | None]


@dataclass(eq=False)
class _Part(Generic[T]):
    value: T
    #: Set when the part is written (or failed), or when its caller is to lead.
    wake: threading.Event = field(default_factory=threading.Event)
    written: bool = False
    outcome: BaseException | None = None


class GroupWriter(Generic[T]):
    """`write(parts)` writes a batch; it returns None when every part is written, or one
    outcome per part; an exception it raises is every part's. `size(part)` is how much of a
    batch (`max_batch`) a part fills."""

    def __init__(
        self,
        write: Callable[[list[T]], Outcomes | None],
        max_batch: int = 500,
        size: Callable[[T], int] = lambda _part: 1,
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._size = size
        self._lock = threading.Lock()
        self._waiting: deque[_Part[T]] = deque()
        self._writing = False

    @property
    def waiting(self) -> int:
        """Parts queued behind the write in progress."""
        return len(self._waiting)

    def submit(self, value: T) -> None:
        """Write one caller's part with whatever else is waiting; returns once it is written
        (or raises why not)."""
        part = _Part(value)
        with self._lock:
            self._waiting.append(part)
            lead = not self._writing
            self._writing = True
        while True:
            if lead:
                self._lead(part)
            part.wake.wait()
            if part.written:
                break
            part.wake.clear()  # handed the lead
            lead = True
        if part.outcome is not None:
            raise part.outcome

    def _lead(self, own: _Part[T]) -> None:
        """Write batches until `own` is written, then hand the lead on (or end it)."""
        while not own.written:
            with self._lock:
                batch, filled = [], 0
                while self._waiting and filled < self._max_batch:
                    part = self._waiting.popleft()
                    batch.append(part)
                    filled += self._size(part.value)
            self._flush(batch)
        with self._lock:
            if self._waiting:
                self._waiting[0].wake.set()
            else:
                self._writing = False

    def _flush(self, batch: list[_Part[T]]) -> None:
        try:
            outcomes = self._write([part.value for part in batch])
        except Exception as exc:  # every part's
            outcomes = [exc] * len(batch)
        for part, outcome in zip(batch, outcomes or [None] * len(batch), strict=True):
            part.outcome, part.written = outcome, True
            part.wake.set()
