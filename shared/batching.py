"""Group writes: one writer thread takes what concurrent callers queued and writes it as one
batch (one transaction instead of one per caller: batch at every hop); each caller returns once
its own part is written, or raises what kept it from being written.

Used by the event stores (shared.store.GroupCommit) and the audit log (shared.audit.log).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")

#: What a batch's writer says of each part: None (written) or the error that kept it out.
Outcomes = Sequence[BaseException | None]


class GroupWriter(Generic[T]):
    """`write(parts)` writes a batch; it returns None when every part is written, or one
    outcome per part; an exception it raises is every part's. `size(part)` is how much of a
    batch (`max_batch`) a part fills."""

    def __init__(
        self,
        write: Callable[[list[T]], Outcomes | None],
        name: str,
        max_batch: int = 500,
        size: Callable[[T], int] = lambda _part: 1,
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._size = size
        self._queue: queue.SimpleQueue[tuple[T, Future[None]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, part: T) -> None:
        """Queue one caller's part and wait until it is written (or raise why not)."""
        done: Future[None] = Future()
        self._queue.put((part, done))
        done.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            filled = self._size(item[0])
            while filled < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
                filled += self._size(more[0])
            self._flush(batch)

    def _flush(self, batch: list[tuple[T, Future[None]]]) -> None:
        try:
            outcomes = self._write([part for part, _ in batch])
        except Exception as exc:  # handed to every waiting caller
            outcomes = [exc] * len(batch)
        for (_, done), outcome in zip(batch, outcomes or [None] * len(batch), strict=True):
            if outcome is None:
                done.set_result(None)
            else:
                done.set_exception(outcome)
