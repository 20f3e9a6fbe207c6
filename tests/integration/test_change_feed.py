"""The change feed behind WatchPathway: one poller hands each change to the streams that watch
its patient or every patient (real SQLite read model). Which patients a municipality's stream
may see is the access policy's business, in the servicer, not the feed's."""

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
    patient = feed.subscribe("p|1")
    everyone = feed.subscribe(None)
    change(engine, "p|1", "4201")
    change(engine, "p|2", "4201")
    change(engine, "p|3", "4301")
    seen: list[str] = []
    for _ in range(40):
        seen += [c["patient_key"] for c in everyone.take(timeout=0.1)]
        if len(seen) == 3:
            break
    assert seen == ["p|1", "p|2", "p|3"]
    assert [c["patient_key"] for c in patient.take(timeout=1)] == ["p|1"]
    feed.unsubscribe(patient)
    feed.unsubscribe(everyone)
    engine.dispose()
