"""The vendor stream's positions (services/streams/streamlog.py) on SQLite and PostgreSQL:
each event gets one position, in the order first taken, and keeps it when it comes again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from services.streams import streamlog
from shared.events import Envelope
from shared.events.registry import ResidenceRecorded
from shared.ids import FNR_SYSTEM
from shared.sql import engine
from tests.support import make_fnr

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(12, 3, 42, 480)}
AGGREGATE = "0d3c8f0e-7a0b-4d55-9d0c-2f3c1e4b5a61"


def moved(version: int) -> Envelope:
    return Envelope(
        event_id=Envelope.make_event_id(AGGREGATE, version),
        aggregate_id=AGGREGATE,
        aggregate_version=version,
        patient=PATIENT,
        occurred_at="2026-11-28T09:00:00.000000Z",
        recorded_at="2026-11-28T09:00:01.000000Z",
        actor={"her_id": "112374", "org_kind": "REGISTRY"},
        correlation_id="c",
        causation_id="c",
        data=ResidenceRecorded(municipality_her_id="4201", valid_from=f"2026-0{version}-01"),
    )


@pytest.fixture
def log_engine(backend: dict[str, str]) -> Iterator[Engine]:
    created = engine(backend["referrals"])
    streamlog.migrate(created)
    streamlog.migrate(created)  # a second start finds the table there
    yield created
    created.dispose()


def test_positions_follow_the_order_events_were_first_taken_and_never_change(
    log_engine: Engine,
) -> None:
    first = streamlog.append(log_engine, [moved(1), moved(2)])
    assert first[moved(1).event_id] < first[moved(2).event_id]
    # a redelivered batch, with a new event after the old ones
    again = streamlog.append(log_engine, [moved(2), moved(1), moved(3)])
    assert {k: again[k] for k in first} == first
    assert again[moved(3).event_id] > first[moved(2).event_id]
    assert streamlog.head(log_engine) == again[moved(3).event_id]
    assert streamlog.append(log_engine, []) == {}
