"""Snapshots (shared.snapshots, shared.store.GroupCommit): what JSON cannot tell apart survives
a snapshot's round trip through the store's transcoder; a snapshot is taken when a command's
events reach a multiple of the interval, and stored only when the command committed
(in-memory store)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.domain import event
from eventsourcing.persistence import IntegrityError

from shared.domain import CarepathAggregate
from shared.events import medications as med
from shared.limits import snapshot_interval
from shared.snapshots import TAG, CarepathSnapshot, pack, unpack
from shared.store import CarepathApplication, GroupCommit


class Colour(enum.StrEnum):
    RED = "RED"


@dataclass(frozen=True, slots=True)
class Point:
    at: datetime
    tags: tuple[str, ...]


class Tally(CarepathAggregate):
    """Its events carry plain JSON; its state holds every kind of value (`STATE`)."""

    @event("Counted")
    def count(self, what: Any) -> None:
        self.__dict__.setdefault("seen", []).append(what)
        self.rich = STATE


class TallyApplication(CarepathApplication):
    name = "tally"
    snapshotted = (Tally,)


def app() -> TallyApplication:
    return TallyApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


STATE = {
    "when": datetime(2026, 3, 1, 9, tzinfo=UTC),
    "day": date(2026, 3, 1),
    "id": uuid4(),
    "amount": Decimal("12.50"),
    "pair": ("a", 1),
    "keys": {"8134021:c-1", "59:c-2"},
    "frozen": frozenset({"x"}),
    "colour": Colour.RED,
    "point": Point(datetime(2026, 3, 2, tzinfo=UTC), ("a", "b")),
    "payload": med.MedicationPaused(entry_id=str(uuid4()), reason="før operasjon"),
    "view": MappingProxyType({"a": [1, ("b",)]}),
    "nested": {"list": [("t",), None, 1.5, True]},
}


def test_packed_state_survives_the_stores_transcoder() -> None:
    transcoder = app().mapper.transcoder
    assert unpack(transcoder.decode(transcoder.encode(pack(STATE)))) == STATE
    assert type(unpack(pack(STATE))["pair"]) is tuple


def test_a_dict_using_the_tag_as_a_key_is_refused() -> None:
    with pytest.raises(TypeError):
        pack({TAG: "tuple"})


def test_an_unknown_type_is_refused_when_taken_not_when_read() -> None:
    with pytest.raises(TypeError, match="object"):
        pack(object())


def test_the_interval_comes_from_limits_toml_and_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CAREPATH_SNAPSHOT_INTERVAL", raising=False)
    assert snapshot_interval() == 100
    monkeypatch.setenv("CAREPATH_SNAPSHOT_INTERVAL", "7")
    assert snapshot_interval() == 7


def test_a_snapshot_is_taken_when_a_command_reaches_a_multiple_of_the_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAREPATH_SNAPSHOT_INTERVAL", "3")
    tallies = app()
    tally = Tally()
    tallies.save_command(tally)  # version 1
    for step in (1, 3, 1, 2):  # versions 2, 5, 6, 8: 3 and 6 are reached at 5 and 6
        for _ in range(step):
            tally.count(step)
        tallies.save_command(tally)
    assert tallies.snapshots is not None
    taken = list(tallies.snapshots.get(tally.id))
    assert [s.originator_version for s in taken] == [5, 6]
    assert all(isinstance(s, CarepathSnapshot) for s in taken)
    loaded = tallies.repository.get(tally.id)
    assert vars(loaded) == vars(tally)
    assert loaded.rich == STATE
    assert type(loaded.rich["pair"]) is tuple
    # not in the notification log: only the aggregate's 8 events are
    assert len(tallies.recorder.select_notifications(start=1, limit=100)) == 8


def test_an_aggregate_of_a_class_not_snapshotted_gets_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAREPATH_SNAPSHOT_INTERVAL", "1")
    plain = CarepathApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    assert plain.snapshots is None
    tally = Tally()
    tally.count(1)
    plain.save_command(tally)
    assert plain.repository.get(tally.id).version == 2


def test_a_command_that_conflicts_stores_no_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREPATH_SNAPSHOT_INTERVAL", "2")
    tallies = app()
    tally = Tally()
    tallies.save_command(tally)
    stale = tallies.repository.get(tally.id)
    tally.count(1)
    tallies.save_command(tally)  # version 2: a snapshot
    stale.count(2)
    with pytest.raises(IntegrityError):
        tallies.save_command(stale)  # version 2 again, refused: its snapshot must not be stored
    assert tallies.snapshots is not None
    (snapshot,) = tallies.snapshots.get(tally.id)
    assert unpack(snapshot.state)["seen"] == [1]


def test_a_snapshot_that_fails_to_store_leaves_the_command_committed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tallies = app()

    def refuse(_: list[CarepathSnapshot]) -> None:
        raise OSError("disk full")

    commits = GroupCommit(tallies.save, put_snapshots=refuse, snapshotted=(Tally,), interval=1)
    tally = Tally()
    commits.save((tally,))
    assert tallies.repository.get(tally.id).version == 1
    assert "snapshots not stored (OSError)" in caplog.text
