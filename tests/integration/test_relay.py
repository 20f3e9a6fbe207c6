"""The outbox relay on the real broker: everything stored is published, once per position,
and nothing is lost while RabbitMQ is down."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pika
import pytest

from services.referrals.application import ReferralsApplication
from services.referrals.domain import Priority
from shared.amqp import BatchPublisher, PublishError
from shared.broker import Tenant
from shared.broker import rabbitmqctl as rabbitmqctl_path
from shared.config import StoreSettings
from shared.domain import CommandContext
from shared.events import Envelope
from shared.ids import FNR_SYSTEM
from shared.outbox import OutboxRelay, PositionStore
from tests.conftest import GP, HOSPITAL
from tests.support import bind_test_queue, drain_queue, make_fnr, unique_queue, wait_for

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def send_referrals(app: ReferralsApplication, n: int, prefix: str) -> None:
    for i in range(n):
        patient = {"system": FNR_SYSTEM, "value": make_fnr(1 + i % 28, 1 + i % 12, 60, 400)}
        app.send_referral(
            CommandContext(f"{prefix}-{i}", T0 + timedelta(minutes=i), GP, "c"),
            patient,
            HOSPITAL.her_id,
            "Henvisningsgrunn",
            Priority.ROUTINE,
            None,
        )


@pytest.fixture
def store(backend: dict[str, str]) -> Iterator[tuple[ReferralsApplication, PositionStore]]:
    app = ReferralsApplication.from_url(backend["referrals"])
    positions = PositionStore(StoreSettings(backend["referrals"]).sqlalchemy_url(), "test-relay")
    yield app, positions
    positions.close()
    app.close()


def rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl")
    assert ctl, "rabbitmqctl is needed to stop and restart the broker"
    subprocess.run([ctl, *args], check=True, capture_output=True, timeout=120)


def broker_up(uri: str) -> bool:
    try:
        pika.BlockingConnection(pika.URLParameters(uri)).close()
        return True
    except Exception:
        return False


def test_every_stored_event_is_published_with_its_envelope(
    store: tuple[ReferralsApplication, PositionStore], broker: Tenant, amqp_uri: str
) -> None:
    app, positions = store
    queue = unique_queue()
    bind_test_queue(amqp_uri, "referrals.events", queue)
    send_referrals(app, 1200, "pub")
    relay = OutboxRelay(
        "referrals", app, BatchPublisher(broker.uri("referrals"), "referrals"), positions
    )
    while relay.relay_once():
        pass
    assert relay.position == app.recorder.max_notification_id()
    bodies = drain_queue(amqp_uri, queue)
    envelopes = [Envelope.from_json(b) for b in bodies]
    assert len({e.event_id for e in envelopes}) == 1200
    assert all(e.event_type == "ReferralSent" and e.source == "referrals" for e in envelopes)


def test_a_restarted_relay_resumes_from_its_tracked_position(
    store: tuple[ReferralsApplication, PositionStore], broker: Tenant, amqp_uri: str
) -> None:
    app, positions = store
    queue = unique_queue()
    bind_test_queue(amqp_uri, "referrals.events", queue)
    send_referrals(app, 30, "a")
    first = OutboxRelay(
        "referrals", app, BatchPublisher(broker.uri("referrals"), "referrals"), positions
    )
    assert first.relay_once() == 30
    send_referrals(app, 20, "b")
    second = OutboxRelay(
        "referrals", app, BatchPublisher(broker.uri("referrals"), "referrals"), positions
    )
    assert second.position == 30
    assert second.relay_once() == 20
    assert len(drain_queue(amqp_uri, queue)) == 50


def test_an_unreachable_broker_is_a_publish_error_not_a_loss(
    store: tuple[ReferralsApplication, PositionStore],
) -> None:
    app, positions = store
    send_referrals(app, 3, "x")
    relay = OutboxRelay(
        "referrals",
        app,
        BatchPublisher("amqp://guest:guest@127.0.0.1:1/%2F", "referrals"),
        positions,
    )
    with pytest.raises(PublishError):
        relay.relay_once()
    assert relay.position == 0 and positions.get() == 0


def test_commands_accepted_while_the_broker_is_stopped_are_all_published_after_restart(
    store: tuple[ReferralsApplication, PositionStore], broker: Tenant, amqp_uri: str
) -> None:
    app, positions = store
    queue = unique_queue()
    bind_test_queue(amqp_uri, "referrals.events", queue)
    relay = OutboxRelay(
        "referrals", app, BatchPublisher(broker.uri("referrals"), "referrals"), positions
    )
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), kwargs={"max_backoff": 0.5})
    thread.start()
    try:
        send_referrals(app, 40, "before")
        wait_for(lambda: relay.position == 40, what="the first 40 published")
        rabbitmqctl("stop_app")
        try:
            assert not broker_up(amqp_uri)
            send_referrals(app, 60, "during")  # the service keeps accepting commands
            time.sleep(1.0)  # the relay is now failing and backing off
            assert relay.position == 40
        finally:
            rabbitmqctl("start_app")
            rabbitmqctl("await_startup")
        wait_for(lambda: broker_up(amqp_uri), timeout=60, what="the broker")
        send_referrals(app, 10, "after")
        wait_for(lambda: relay.position == 110, timeout=60, what="the relay to catch up")
    finally:
        stop.set()
        thread.join(timeout=10)
    ids = {Envelope.from_json(b).event_id for b in drain_queue(amqp_uri, queue)}
    assert len(ids) == 110


def test_events_are_kept_until_a_queue_is_bound_to_take_them(
    store: tuple[ReferralsApplication, PositionStore], broker: Tenant, amqp_uri: str
) -> None:
    """RabbitMQ confirms and drops a message no queue is bound to: the relay must not count
    such a batch as published."""
    app, positions = store
    listed = subprocess.run(
        [rabbitmqctl_path(), "-q", "list_bindings", "-p", broker.vhost, "source_name",
         "destination_name", "routing_key"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    bound = [
        (queue, key)
        for source, queue, key in (line.split("\t") for line in listed)
        if source == "referrals.events"
    ]
    conn = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    ch = conn.channel()
    for queue, key in bound:  # no bindings at all (the definitions' and other tests' copies)
        ch.queue_unbind(queue, "referrals.events", key)
    send_referrals(app, 5, "nobody")
    relay = OutboxRelay(
        "referrals", app, BatchPublisher(broker.uri("referrals"), "referrals"), positions
    )
    with pytest.raises(PublishError, match="unroutable"):
        relay.relay_once()
    assert relay.position == 0
    queue = unique_queue()
    bind_test_queue(amqp_uri, "referrals.events", queue)
    assert relay.relay_once() == 5
    assert len(drain_queue(amqp_uri, queue)) == 5
    for queue, key in bound:  # as they were
        ch.queue_bind(queue, "referrals.events", key)
    conn.close()
