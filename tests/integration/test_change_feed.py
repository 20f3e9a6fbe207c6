"""The change feed behind WatchPathway: one poller hands each change to the streams that watch
its patient or its municipality (real SQLite read model)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from services.pathway import migrate, readmodel
from services.pathway.feed import ChangeFeed


def change(engine: Engine, key: str, municipality: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            readmodel.changes.insert(),
            [{"patient_key": key, "municipality_her_id": municipality, "changed_at": "t"}],
        )


def test_each_stream_gets_the_changes_it_watches_from_when_it_started(tmp_path: Path) -> None:
    engine = readmodel.create_engine(f"sqlite:///{tmp_path}/pathway.sqlite")
    migrate.upgrade(engine)
    change(engine, "p|before", "4201")  # before anyone watched: nobody is told
    feed = ChangeFeed(engine, poll_seconds=0.05)
    patient = feed.subscribe("p|1", None)
    municipality = feed.subscribe(None, "4201")
    change(engine, "p|1", "4201")
    change(engine, "p|2", "4201")
    change(engine, "p|3", "4301")
    seen: list[str] = []
    for _ in range(40):
        seen += [c["patient_key"] for c in municipality.take(timeout=0.1)]
        if len(seen) == 2:
            break
    assert seen == ["p|1", "p|2"]
    assert [c["patient_key"] for c in patient.take(timeout=1)] == ["p|1"]
    feed.unsubscribe(patient)
    feed.unsubscribe(municipality)
    engine.dispose()
