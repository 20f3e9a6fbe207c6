"""Medication lists with long histories load from their newest snapshot (shared.snapshots), on
SQLite and PostgreSQL: the snapshot plus later events give exactly the list a replay from the
first event gives, at every past version too; a command reads a bounded number of stored
rows however long the history; snapshots stay out of the notification log, so the relay
publishes the domain events and nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import Repository

from services.medications.application import MedicationsApplication
from services.medications.domain import MedicationList, ReconciliationSource, medication_list_id
from shared.broker import Tenant
from shared.domain import CommandContext
from shared.events import Envelope
from shared.ids import FNR_SYSTEM
from shared.snapshots import CarepathSnapshot
from tests.conftest import GP, HOSPITAL, MUNICIPALITY
from tests.support import bind_test_queue, ctx, drain_queue, make_fnr, outbox_relay, unique_queue

T0 = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)
PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(12, 3, 42, 480)}
LIST_ID = medication_list_id(PATIENT)
ACTORS = (GP, HOSPITAL, MUNICIPALITY)


def command(i: int, when: datetime | None = None) -> CommandContext:
    """The story's i-th command, by its actors in turn, an hour after the one before."""
    return ctx(ACTORS[i % len(ACTORS)], f"c-{i}", when or T0 + timedelta(hours=i))


@pytest.fixture
def app(
    backend: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[MedicationsApplication]:
    monkeypatch.setenv("CAREPATH_SNAPSHOT_INTERVAL", "10")
    app = MedicationsApplication.from_url(backend["medications"])
    yield app
    app.close()


def history(app: MedicationsApplication, commands: int) -> UUID:
    """A list with every kind of change (two entries, backdated and late-reported changes,
    reconciliations), `commands` commands long; returns the first entry's id."""
    first = app.prescribe(command(0), PATIENT, "B01AA03", "Warfarin", "5 mg x 1", None)
    (warfarin,) = first.entries
    second = app.prescribe(command(1), PATIENT, "A10BA02", "Metformin", "500 mg x 2", "Diabetes")
    (metformin,) = set(second.entries) - {warfarin}
    for i in range(2, commands):
        when = T0 + timedelta(hours=i)
        match (i - 2) % 5:
            case 0:
                app.pause(command(i, when), PATIENT, UUID(metformin), "før operasjon")
            case 1:
                app.resume(command(i, when), PATIENT, UUID(metformin))
            case 2:
                app.change_dose(command(i, when), PATIENT, UUID(warfarin), f"{i} mg x 1", None)
            case 3:  # reported late: its clinical time is before the last change's
                late = when - timedelta(minutes=90)
                app.change_dose(command(i, late), PATIENT, UUID(warfarin), f"{i}.5 mg", "sent")
            case _:
                sources = [ReconciliationSource.PATIENT, ReconciliationSource.GP_RECORD]
                app.reconcile(command(i, when), PATIENT, sources, f"runde {i}")
    return UUID(warfarin)


def replayed(app: MedicationsApplication, version: int | None = None) -> MedicationList:
    """The list replayed from its first event, no snapshot."""
    aggregate: MedicationList = Repository(event_store=app.events).get(LIST_ID, version=version)
    return aggregate


def state(aggregate: MedicationList) -> dict[str, Any]:
    return dict(vars(aggregate))


def test_a_list_loaded_from_its_snapshot_equals_the_list_replayed_from_its_first_event(
    app: MedicationsApplication,
) -> None:
    history(app, 37)
    assert app.snapshots is not None
    taken = list(app.snapshots.get(LIST_ID))
    assert [s.originator_version for s in taken] == [10, 20, 30]
    assert all(isinstance(s, CarepathSnapshot) for s in taken)

    loaded = app.load(MedicationList, LIST_ID, "medication list")
    assert loaded.version == 38  # started + 37 commands
    assert state(loaded) == state(replayed(app))
    assert loaded.view() == replayed(app).view()
    # and a list taken straight from a snapshot, no later events
    at_snapshot = app.load(MedicationList, LIST_ID, "medication list", version=30)
    assert state(at_snapshot) == state(replayed(app, 30))


def test_past_versions_load_as_they_were(app: MedicationsApplication) -> None:
    history(app, 25)
    for version in (1, 9, 10, 11, 19, 20, 21, 26):
        past = app.load(MedicationList, LIST_ID, "medication list", version=version)
        assert past.version == version
        assert state(past) == state(replayed(app, version))


def test_a_repeated_command_answers_with_its_first_result_after_a_snapshot(
    app: MedicationsApplication,
) -> None:
    warfarin = history(app, 12)
    first = app.change_dose(command(5, T0 + timedelta(hours=5)), PATIENT, warfarin, "5 mg", None)
    again = app.change_dose(command(5, T0 + timedelta(hours=5)), PATIENT, warfarin, "5 mg", None)
    assert again == first
    assert app.load(MedicationList, LIST_ID, "medication list").version == 13


class Counted:
    """Counts the rows a recorder's `select_events` returns."""

    def __init__(self, recorder: Any) -> None:
        self.rows = 0
        self._select = recorder.select_events
        recorder.select_events = self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        rows = self._select(*args, **kwargs)
        self.rows += len(rows)
        return rows


def test_a_command_on_a_list_of_2000_changes_reads_a_bounded_number_of_rows(
    backend: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREPATH_SNAPSHOT_INTERVAL", "100")
    app = MedicationsApplication.from_url(backend["medications"])
    try:
        # 2,050 changes made by the domain, saved in commands of 7 events at a time
        medication_list = MedicationList.start(command(0), PATIENT)
        entry = medication_list.prescribe(command(1), "B01AA03", "Warfarin", "5 mg x 1", None)
        for i in range(2, 2050):
            medication_list.change_dose(command(i), entry, f"{i} mg", None)
            if i % 7 == 0:
                app.save_command(medication_list)
        app.save_command(medication_list)
        assert medication_list.version == 2050
        assert app.snapshots is not None
        taken = [s.originator_version for s in app.snapshots.get(LIST_ID)]
        assert len(taken) == 20  # one per 100 events, at the command that reached the 100

        events = Counted(app.recorder)
        snapshots = Counted(app.snapshots.recorder)
        app.change_dose(command(2050), PATIENT, UUID(entry), "1 mg", None)
        assert snapshots.rows == 1  # the newest
        assert events.rows == 2050 - taken[-1] < 100  # the events after it, fewer than 100
        assert state(app.load(MedicationList, LIST_ID, "list")) == state(replayed(app))
    finally:
        app.close()


def test_snapshots_are_never_published(
    backend: dict[str, str], monkeypatch: pytest.MonkeyPatch, broker: Tenant, amqp_uri: str
) -> None:
    monkeypatch.setenv("CAREPATH_SNAPSHOT_INTERVAL", "2")
    app = MedicationsApplication.from_url(backend["medications"])
    try:
        history(app, 5)  # 6 events: snapshots at 2, 4 and 6
        assert app.snapshots is not None
        assert [s.originator_version for s in app.snapshots.get(LIST_ID)] == [2, 4, 6]
        notifications = app.recorder.select_notifications(start=1, limit=100)
        assert len(notifications) == 6
        assert not any("Snapshot" in n.topic for n in notifications)

        queue = unique_queue("medsnap")
        bind_test_queue(amqp_uri, "medications.events", queue)
        with outbox_relay(app, backend["medications"], broker) as relay:
            assert relay.relay_once() == 6
            assert relay.relay_once() == 0
        published = [Envelope.from_json(b).event_type for b in drain_queue(amqp_uri, queue)]
        assert published == [
            "MedicationListStarted",
            "MedicationPrescribed",
            "MedicationPrescribed",
            "MedicationPaused",
            "MedicationResumed",
            "MedicationDoseChanged",
        ]
    finally:
        app.close()
