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
from eventsourcing.utils import get_topic

from services.medications.application import MedicationsApplication
from services.medications.domain import (
    TOKEN_WIDTH,
    Change,
    EntryState,
    MedicationList,
    ReconciliationSource,
    change_of,
    fold,
    medication_list_id,
)
from shared.broker import Tenant
from shared.domain import CommandContext
from shared.errors import InvalidTransition
from shared.events import Envelope
from shared.ids import FNR_SYSTEM
from shared.snapshots import CarepathSnapshot, pack
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


def stored(app: MedicationsApplication, version: int | None = None) -> list[Change]:
    return [change_of(e) for e in app.events.get(LIST_ID, lte=version)]


def test_a_snapshot_holds_the_list_now_and_one_token_per_command_not_the_history(
    app: MedicationsApplication,
) -> None:
    warfarin = history(app, 47)
    assert app.snapshots is not None
    (newest,) = app.snapshots.get(LIST_ID, desc=True, limit=1)
    assert newest.originator_version == 40
    assert set(newest.state) == {
        "_created_on",
        "_modified_on",
        "patient",
        "now",
        "handled",
        "class_version",
    }
    assert newest.state["class_version"] == 2
    assert len("".join(newest.state["handled"])) == TOKEN_WIDTH * 39  # the first made 2 events

    # commands on the list loaded from it: on time, and late, each answered with the fold
    view = app.change_dose(command(100, T0 + timedelta(days=30)), PATIENT, warfarin, "9 mg", None)
    assert view == fold(LIST_ID, PATIENT, stored(app)) and view.version == 49
    late = T0 + timedelta(hours=20, minutes=30)
    view = app.change_dose(command(101, late), PATIENT, warfarin, "8 mg", "sent late")
    assert view == fold(LIST_ID, PATIENT, stored(app))
    assert view.entries[str(warfarin)].dose == "9 mg"  # the change of day 30 is the latest
    assert app.get_list(PATIENT, as_of=late).entries[str(warfarin)].dose == "8 mg"
    assert state(app.load(MedicationList, LIST_ID, "list")) == state(replayed(app))


def test_a_late_report_after_a_snapshot_lands_in_its_clinical_place_or_is_refused(
    app: MedicationsApplication,
) -> None:
    """History: metformin paused at hour 2 + 5k and resumed at 3 + 5k, up to hour 33; the
    latest change is at hour 36. The list loads from its snapshot at 30; a late report folds
    the history read from the store."""
    history(app, 37)
    metformin = next(e for e, v in app.get_list(PATIENT).entries.items() if v.name == "Metformin")
    # between the resume of hour 28 and the pause of hour 32: a late pause there would make
    # the recorded pause of hour 32 impossible
    with pytest.raises(InvalidTransition, match="later recorded change"):
        app.pause(command(200, T0 + timedelta(hours=30)), PATIENT, UUID(metformin), "sent late")
    assert app.load(MedicationList, LIST_ID, "list").version == 38  # nothing written
    # a late discontinuation after the last recorded change of metformin is possible, and it
    # lands in its clinical place: the list now is discontinued, as of before it is not
    when = T0 + timedelta(hours=34, minutes=30)
    assert not app.load(MedicationList, LIST_ID, "list").now.on_time(when)  # hour 36 recorded
    view = app.discontinue(command(201, when), PATIENT, UUID(metformin), "bivirkninger")
    assert view.entries[metformin].state is EntryState.DISCONTINUED
    assert view == fold(LIST_ID, PATIENT, stored(app))
    before = app.get_list(PATIENT, as_of=when - timedelta(minutes=1))
    assert before.entries[metformin].state is not EntryState.DISCONTINUED
    assert state(app.load(MedicationList, LIST_ID, "list")) == state(replayed(app))


@pytest.mark.parametrize("module", ["shared.medication_list", "services.medications.domain"])
def test_a_snapshot_of_the_old_shape_still_loads(
    backend: dict[str, str], monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    """A snapshot as main took it before the list kept only the list now (class_version 1:
    every change, and the command keys as a set; its changes named by the module the Change
    class lived in then or now) loads as the replay does, and answers commands."""
    monkeypatch.setenv("CAREPATH_SNAPSHOT_INTERVAL", "1000")
    app = MedicationsApplication.from_url(backend["medications"])
    try:
        warfarin = history(app, 25)
        changes = stored(app, 20)
        at_20 = vars(replayed(app, 20))
        old_state = {
            "_created_on": at_20["_created_on"],
            "_modified_on": at_20["_modified_on"],
            "patient": dict(PATIENT),
            "changes": changes,
            "command_keys": {c.command_key for c in changes},
        }
        packed = pack(old_state)
        for change in packed["changes"]:
            change["t"] = f"{module}:Change"
        assert app.snapshots is not None
        app.snapshots.put(
            [
                CarepathSnapshot(
                    originator_id=LIST_ID,
                    originator_version=20,
                    timestamp=CarepathSnapshot.create_timestamp(),
                    topic=get_topic(MedicationList),
                    state=packed,
                )
            ]
        )
        loaded = app.load(MedicationList, LIST_ID, "list")
        assert state(loaded) == state(replayed(app))
        assert state(app.load(MedicationList, LIST_ID, "list", version=20)) == state(
            replayed(app, 20)
        )
        # a repeated command from before the snapshot is known, a new one lands
        first = command(4, T0 + timedelta(hours=4))
        assert app.change_dose(first, PATIENT, warfarin, "4 mg x 1", None).version == 6
        view = app.change_dose(
            command(300, T0 + timedelta(days=9)), PATIENT, warfarin, "1 mg", None
        )
        assert view == fold(LIST_ID, PATIENT, stored(app)) and view.version == 27
    finally:
        app.close()
