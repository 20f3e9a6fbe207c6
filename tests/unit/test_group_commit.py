"""Group commit: concurrent commands share one transaction, and a conflict in a batch costs only
the conflicting command (in-memory store)."""

from __future__ import annotations

import threading
from typing import Any

from eventsourcing.domain import event
from eventsourcing.persistence import IntegrityError

from shared.domain import CarepathAggregate
from shared.store import CarepathApplication, GroupCommit
from tests.support import wait_for


class Counter(CarepathAggregate):
    @event("Counted")
    def count(self) -> None:
        pass


def test_a_conflict_in_a_batch_fails_only_its_command_and_loses_no_other_event() -> None:
    app = CarepathApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    contested = Counter()
    app.save(contested)
    first, stale = (app.repository.get(contested.id) for _ in range(2))
    first.count()
    app.save(first)  # another command got there first
    stale.count()
    clean = Counter()

    gate = threading.Event()

    def save(*events: Any) -> None:
        gate.wait(timeout=10)  # hold the first batch until the next two commands queue up
        app.save(*events)

    commits = GroupCommit(save)
    outcome: dict[str, BaseException | None] = {}

    def command(name: str, aggregate: CarepathAggregate) -> None:
        try:
            commits.save((aggregate,))
            outcome[name] = None
        except BaseException as exc:
            outcome[name] = exc

    threads = [threading.Thread(target=command, args=("warm-up", Counter()))]
    threads[0].start()
    wait_for(lambda: commits._writer.waiting == 0, what="the first batch in flight")
    threads += [
        threading.Thread(target=command, args=("clean", clean)),
        threading.Thread(target=command, args=("stale", stale)),
    ]
    for t in threads[1:]:
        t.start()
    wait_for(lambda: commits._writer.waiting == 2, what="two commands queued together")
    gate.set()
    for t in threads:
        t.join(timeout=10)

    assert outcome["clean"] is None
    assert app.repository.get(clean.id).version == 1  # the clean command's event is stored
    assert isinstance(outcome["stale"], IntegrityError)
    assert app.repository.get(contested.id).version == 2
