"""Group commit: concurrent commands share one transaction, and a conflict in a batch costs only
the conflicting command (in-memory store)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from eventsourcing.domain import event
from eventsourcing.persistence import IntegrityError

from shared.domain import CarepathAggregate
from shared.errors import Conflict
from shared.store import CONFLICT_RETRIES, CarepathApplication, GroupCommit
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


# --- transact: the one load → change → save ----------------------------------------------------


def test_transact_saves_several_aggregates_together_and_reruns_on_a_conflict() -> None:
    """An index every command changes, and a new aggregate per command: when another change
    of the index got there first, neither is saved and the command runs again on the index
    as stored."""
    app = CarepathApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    index = Counter()
    app.save(index)
    attempts: list[int] = []

    def attempt() -> tuple[int, tuple[CarepathAggregate, ...]]:
        loaded = app.load(Counter, index.id, "index")
        attempts.append(loaded.version)
        if len(attempts) == 1:  # another command changes the index meanwhile
            other = app.load(Counter, index.id, "index")
            other.count()
            app.save(other)
        loaded.count()
        created = Counter()
        return loaded.version, (loaded, created)

    assert app.transact(attempt, "index") == 3
    assert attempts == [1, 2]  # the second attempt read what the other command saved
    assert app.load(Counter, index.id, "index").version == 3
    assert [n.topic.rsplit(".", 1)[-1] for n in app.recorder.select_notifications(1, 10)] == [
        "Created",
        "Counted",
        "Counted",
        "Created",
    ]  # the first attempt's new aggregate was never saved


def test_transact_gives_up_after_its_attempts_and_saves_nothing() -> None:
    app = CarepathApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    index = Counter()
    app.save(index)

    def attempt() -> tuple[None, tuple[CarepathAggregate, ...]]:
        loaded = app.load(Counter, index.id, "index")
        other = app.load(Counter, index.id, "index")
        other.count()
        app.save(other)  # always one step ahead
        loaded.count()
        return None, (loaded, Counter())

    with pytest.raises(Conflict, match="index changed concurrently"):
        app.transact(attempt, "index")
    assert app.load(Counter, index.id, "index").version == 1 + CONFLICT_RETRIES
    assert len(app.recorder.select_notifications(1, 100)) == 1 + CONFLICT_RETRIES


def test_transact_serialises_the_commands_on_one_serial_aggregate_in_a_process() -> None:
    """Eight commands at once on one index, each also creating its own aggregate: with the
    index as `serial` none conflicts with another (each is attempted once), and all land."""
    app = CarepathApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    index = Counter()
    app.save(index)
    attempts: list[int] = []

    def attempt() -> tuple[None, tuple[CarepathAggregate, ...]]:
        loaded = app.load(Counter, index.id, "index")
        attempts.append(loaded.version)
        loaded.count()
        return None, (loaded, Counter())

    threads = [
        threading.Thread(target=app.transact, args=(attempt, "index"), kwargs={"serial": index.id})
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(attempts) == list(range(1, 9))  # one attempt each, one after another
    assert app.load(Counter, index.id, "index").version == 9
