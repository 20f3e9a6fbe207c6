"""Reactions never drop or park silently (issue 10, item 5), on the real broker and a real
SQLite store, with the reaction running as its own process (`python -m shared.run_reactions`):

- a store that fails under the reaction (locked by the test's exclusive transaction) makes the
  message wait in carepath.retry.1, then carepath.retry.2 (longer), not in the dead-letter
  queue; once the store is back the event is applied exactly once;
- a store that keeps failing ends, after the limit, in the dead-letter queue with its reason,
  attempt count and consumer; `python -m shared.deadletters list` shows it, `replay` applies it
  once the cause is fixed, a replay of an event already applied changes nothing, and `discard`
  removes a letter only with `--yes`;
- the projector's too: an event the read model fails on is tried again and projected once it
  can; its dead letters are listed under its queue, and a replay is checked again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika
import pytest
from sqlalchemy.engine import Engine

from services.admissions.application import AdmissionsApplication
from services.admissions.domain import AdmissionType, StayState
from services.pathway import readmodel
from shared import amqp
from shared.amqp import DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, BatchPublisher
from shared.broker import Tenant
from shared.events import Envelope
from shared.events.discharges import PatientDischarged
from shared.ids import FNR_SYSTEM
from tests.conftest import HOSPITAL, MUNICIPALITY
from tests.processes import nameko
from tests.support import ROOT, ctx, drain_queue, make_fnr, wait_for
from tests.wire import admitted, envelope, projecting, publish, stored

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(21, 6, 58, 240)}
NOW = datetime.now(UTC)
MODULE = "services.admissions.reactions"
#: The admissions reaction's queue: its consumer's name in every dead letter.
CLOSE_ON_DISCHARGE = (
    "evt-discharges-PatientDischarged--admissions_reactions.handle_patient_discharged"
)


def discharged(stay_id: uuid.UUID) -> Envelope:
    """A PatientDischarged of the stay, as the discharges service publishes it."""
    discharge_id = str(uuid.uuid4())
    return Envelope(
        event_id=f"{discharge_id}:3",
        aggregate_id=discharge_id,
        aggregate_version=3,
        patient=PATIENT,
        occurred_at=NOW.isoformat(),
        recorded_at=NOW.isoformat(),
        actor={"her_id": HOSPITAL.her_id, "org_kind": HOSPITAL.org_kind.value},
        correlation_id="dead-letters",
        causation_id="discharge",
        data=PatientDischarged(
            stay_id=str(stay_id), destination="HOME", destination_her_id=None,
            report_message_id=None,
            notice_message_id=None,
        ),
    )  # fmt: skip


def open_stay(app: AdmissionsApplication) -> uuid.UUID:
    stay = app.admit_patient(
        ctx(HOSPITAL, f"admit-{uuid.uuid4().hex[:6]}", NOW, hours=-48), PATIENT,
        "Kirurgisk sengepost 2",
        AdmissionType.ACUTE, None, MUNICIPALITY.her_id, True, False,
    )  # fmt: skip
    return stay.id


def send(broker: Tenant, event: Envelope) -> None:
    publisher = BatchPublisher(broker.uri("discharges"), "discharges")
    try:
        publisher.publish([event])
    finally:
        publisher.close()


def messages_in(uri: str, queue: str) -> int:
    """Messages ready in `queue` (a passive declare, as the administrator)."""
    connection = pika.BlockingConnection(pika.URLParameters(uri))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def settled(uri: str, queue: str) -> bool:
    """Nothing in `queue`, ready or delivered and not yet acked."""
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", pika.URLParameters(uri).virtual_host,
         "name", "messages", "--formatter", "json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return any(q["name"] == queue and q["messages"] == 0 for q in json.loads(listed))


def deadletters(broker: Tenant, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m shared.deadletters ...` as an operator runs it: as the session's dead-letter
    user (its password in AMQP_PASSWORD)."""
    env = {**os.environ, **broker.env(amqp.DEADLETTERS_USER)}
    return subprocess.run(
        [sys.executable, "-m", "shared.deadletters", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def listed(broker: Tenant) -> str:
    done = deadletters(broker, "list")
    assert done.returncode == 0, done.stderr
    return done.stdout


def copy_letter(uri: str) -> tuple[pika.BasicProperties, bytes]:
    """The one letter on the dead-letter queue (left there), as the administrator sees it."""
    connection = pika.BlockingConnection(pika.URLParameters(uri))
    try:
        channel = connection.channel()
        method, props, body = channel.basic_get(DEAD_LETTER_QUEUE, auto_ack=False)
        assert method is not None, "a dead letter"
        channel.basic_nack(method.delivery_tag, requeue=True)
        return props, body
    finally:
        connection.close()


def put_letter(
    broker: Tenant, service: str, headers: dict[str, Any], body: bytes, routing_key: str
) -> None:
    """Park a letter as `service`'s broker user does (what a consumer that parked an event
    twice would leave, or what another service could try to slip in)."""
    connection = pika.BlockingConnection(pika.URLParameters(broker.uri(service)))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        copy = pika.BasicProperties(
            delivery_mode=2, user_id=broker.user(service), headers=dict(headers)
        )
        channel.basic_publish(DEAD_LETTER_EXCHANGE, routing_key, body, copy)
    finally:
        connection.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[AdmissionsApplication, Path]]:
    path = tmp_path / "admissions.sqlite"
    app = AdmissionsApplication.from_url(f"sqlite:///{path}")
    yield app, path
    app.close()


@pytest.fixture
def no_dead_letters(amqp_uri: str) -> Iterator[None]:
    drain_queue(amqp_uri, DEAD_LETTER_QUEUE, delete=False)
    yield
    drain_queue(amqp_uri, DEAD_LETTER_QUEUE, delete=False)


def test_a_locked_store_makes_the_reaction_try_again_later_and_apply_the_event_once(
    store: tuple[AdmissionsApplication, Path],
    broker: Tenant,
    amqp_uri: str,
    no_dead_letters: None,
) -> None:
    admissions, path = store
    stay_id = open_stay(admissions)
    before = admissions.recorder.max_notification_id() or 0
    lock = sqlite3.connect(path, isolation_level=None, timeout=30)
    with nameko(MODULE, broker, {"admissions": f"sqlite:///{path}"}):
        lock.execute("BEGIN EXCLUSIVE")  # the store is locked under the running reaction
        try:
            send(broker, discharged(stay_id))
            # Each attempt meets the lock (10 s) and sends the event to wait: first 1 s, then 10 s.
            wait_for(lambda: messages_in(amqp_uri, "carepath.retry.1"), 60, "a first retry to wait")
            wait_for(lambda: messages_in(amqp_uri, "carepath.retry.2"), 60, "a second, longer wait")
            assert messages_in(amqp_uri, DEAD_LETTER_QUEUE) == 0, "not parked"
        finally:
            lock.execute("ROLLBACK")  # the store is back
            lock.close()
        wait_for(
            lambda: admissions.get_stay(stay_id).state is StayState.CLOSED,
            60,
            "the stay closed once the store is back",
        )
        wait_for(lambda: settled(amqp_uri, CLOSE_ON_DISCHARGE), 30, "the queue settled")
    assert (admissions.recorder.max_notification_id() or 0) == before + 1  # applied once
    assert messages_in(amqp_uri, DEAD_LETTER_QUEUE) == 0


def test_a_store_that_keeps_failing_parks_the_event_with_its_reason_until_replayed(
    store: tuple[AdmissionsApplication, Path],
    broker: Tenant,
    amqp_uri: str,
    no_dead_letters: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admissions, path = store
    stay_id = open_stay(admissions)
    before = admissions.recorder.max_notification_id() or 0
    event = discharged(stay_id)
    monkeypatch.setenv("CAREPATH_REDELIVERY_ATTEMPTS", "3")  # for the reaction's process
    breaker = sqlite3.connect(path, isolation_level=None)
    with nameko(MODULE, broker, {"admissions": f"sqlite:///{path}"}):
        # The store is broken under the running reaction: its table is gone.
        breaker.execute("ALTER TABLE stored_events RENAME TO stored_events_away")
        send(broker, event)
        wait_for(lambda: event.event_id in listed(broker), 60, "the event among the dead letters")
        props, body = copy_letter(amqp_uri)
        assert props.user_id == broker.user("admissions")  # parked by the consumer's service
        headers = dict(props.headers or {})
        assert headers[amqp.CONSUMER_HEADER] == CLOSE_ON_DISCHARGE
        assert headers[amqp.ATTEMPTS_HEADER] == 3
        assert headers[amqp.REASON_HEADER].startswith("not applied by handle_patient_discharged: ")
        assert headers[amqp.REASON_HEADER].endswith("(gave up after 3 attempts)")
        assert headers[amqp.ORIGINAL_EXCHANGE] == "discharges.events"
        assert headers[amqp.ORIGINAL_USER_ID] == broker.user("discharges")
        assert Envelope.from_json(body).event_id == event.event_id
        shown = listed(broker)
        assert f"{CLOSE_ON_DISCHARGE}: 1" in shown
        (line,) = [row for row in shown.splitlines() if event.event_id in row]
        assert line.split("\t")[1:4] == ["PatientDischarged", "discharges", "3"]
        assert PATIENT["value"] not in shown  # no payload: no personal data

        breaker.execute("ALTER TABLE stored_events_away RENAME TO stored_events")  # fixed
        assert admissions.get_stay(stay_id).state is StayState.OPEN
        done = deadletters(broker, "replay", "--event-id", event.event_id)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"replayed {event.event_id} to {CLOSE_ON_DISCHARGE}" in done.stdout
        wait_for(
            lambda: admissions.get_stay(stay_id).state is StayState.CLOSED,
            60,
            "the stay closed by the replay",
        )
        assert "0 dead letters" in listed(broker)

        # A replay of an event already applied changes nothing.
        put_letter(broker, "admissions", headers, body, "PatientDischarged")
        done = deadletters(broker, "replay", "--queue", CLOSE_ON_DISCHARGE, "--all")
        assert done.returncode == 0, done.stdout + done.stderr
        wait_for(lambda: settled(amqp_uri, CLOSE_ON_DISCHARGE), 30, "the replay handled")
        assert (admissions.recorder.max_notification_id() or 0) == before + 1
        assert "0 dead letters" in listed(broker)

        # discard: only with --yes.
        put_letter(broker, "admissions", headers, body, "PatientDischarged")
        refused = deadletters(broker, "discard", "--event-id", event.event_id)
        assert refused.returncode == 2
        assert "add --yes" in refused.stdout
        assert f"{CLOSE_ON_DISCHARGE}: 1" in listed(broker)
        done = deadletters(broker, "discard", "--event-id", event.event_id, "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "0 dead letters" in listed(broker)
    breaker.close()
    assert (admissions.recorder.max_notification_id() or 0) == before + 1


def test_the_projectors_dead_letters_are_listed_and_a_replay_is_checked_again(
    engine: Engine, broker: Tenant, amqp_uri: str, no_dead_letters: None
) -> None:
    """A forged event the projector refused is listed under the projector's queue; replayed,
    it is judged again by its original sender (still not the service) and parked again, while
    a genuine one replayed to the projector is projected."""
    forged = envelope(admitted())
    genuine = envelope(admitted())
    with projecting(engine, broker, amqp_uri) as projector:
        forge = pika.BlockingConnection(pika.URLParameters(amqp_uri))
        channel = forge.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            "admissions.events", "PatientAdmitted", forged.to_json(),
            pika.BasicProperties(content_type="application/json", delivery_mode=2),
        )  # fmt: skip
        forge.close()
        queue = projector._queue
        wait_for(lambda: forged.event_id in listed(broker), 30, "the forgery dead-lettered")
        shown = listed(broker)
        assert f"{queue}: 1" in shown
        assert "untrusted sender on admissions.events: no user_id" in shown
        done = deadletters(broker, "replay", "--all")
        assert done.returncode == 0, done.stdout + done.stderr
        wait_for(lambda: forged.event_id in listed(broker), 30, "the forgery parked again")
        assert stored(engine, [forged.event_id]) == set()
        done = deadletters(broker, "discard", "--all", "--yes")
        assert done.returncode == 0, done.stdout + done.stderr

        # A letter another service slipped in, claiming the event came from admissions, is
        # not replayed: every service may park, only the pathway parks for the projector.
        headers = amqp.dead_letter_headers(
            "not projected: test",
            amqp.Origin("admissions.events", "PatientAdmitted", broker.user("admissions")),
            consumer=queue,
            attempts=8,
        )
        put_letter(broker, "referrals", headers, genuine.to_json(), "PatientAdmitted")
        done = deadletters(broker, "replay", "--queue", queue, "--event-id", genuine.event_id)
        assert done.returncode == 1
        assert f"parked by {broker.user('referrals')}, not by the service" in done.stdout
        assert deadletters(broker, "discard", "--all", "--yes").returncode == 0

        # The same event, parked by the pathway (as the projector gives up on one), is
        # replayed to the projector only and projected.
        put_letter(broker, "pathway", headers, genuine.to_json(), "PatientAdmitted")
        done = deadletters(broker, "replay", "--queue", queue, "--event-id", genuine.event_id)
        assert done.returncode == 0, done.stdout + done.stderr
        wait_for(lambda: stored(engine, [genuine.event_id]), 30, "the replayed event projected")
    assert "0 dead letters" in listed(broker)


def refuse_insert(engine: Engine, event_id: str) -> None:
    """A trigger in the read model that refuses to store this one event (an error that is not
    the database being unavailable, as a bug or a constraint would raise)."""
    table = readmodel.events.name
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                f"CREATE TRIGGER refuse_one BEFORE INSERT ON {table} "
                f"WHEN NEW.event_id = '{event_id}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.event_id = '{event_id}' THEN RAISE EXCEPTION 'refused by the test'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                f"CREATE TRIGGER refuse_one BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION refuse_one()"
            )


def accept_inserts(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER refuse_one")
        else:
            conn.exec_driver_sql(f"DROP TRIGGER refuse_one ON {readmodel.events.name}")
            conn.exec_driver_sql("DROP FUNCTION refuse_one()")


def test_the_projector_tries_a_failing_event_again_and_projects_it_once_it_can(
    engine: Engine, broker: Tenant, amqp_uri: str, no_dead_letters: None
) -> None:
    """The read model refuses one event of a batch (not unavailable: an error of its own): the
    rest of the batch is projected, that one waits in carepath.retry.1, then .2, and is
    projected once the read model takes it; nothing is dead-lettered."""
    failing = envelope(admitted())
    other = envelope(admitted())
    refuse_insert(engine, failing.event_id)
    with projecting(engine, broker, amqp_uri):
        publish(
            broker,
            "admissions",
            [("PatientAdmitted", failing.to_json()), ("PatientAdmitted", other.to_json())],
        )
        wait_for(lambda: stored(engine, [other.event_id]), 30, "the rest of the batch")
        wait_for(lambda: messages_in(amqp_uri, "carepath.retry.2"), 60, "a second, longer wait")
        assert not stored(engine, [failing.event_id])
        accept_inserts(engine)
        wait_for(lambda: stored(engine, [failing.event_id]), 60, "the event projected")
    assert messages_in(amqp_uri, DEAD_LETTER_QUEUE) == 0
