"""The vendors' gRPC event stream on real servers: the whole path of tests/e2e/
test_vendor_streams.py (a doctor's command over gRPC → the store → the relay → RabbitMQ → the
vendor delivery, which numbers every event in the stream log) and the EventStreamService's
grpc.aio server over loopback, read by a plain gRPC client with the vendor's token.

Fjordvik (MUNICIPALITY) has P1 and P3 living there, the other municipality P2; the streams'
subscriptions serve Fjordvik and want MedicationPrescribed.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from fhir.resources.bundle import Bundle
from fhir.resources.subscriptionstatus import SubscriptionStatus
from google.protobuf.timestamp_pb2 import Timestamp

from carepath.v1 import streams_pb2, streams_pb2_grpc
from services.registry.domain import RegistryKind
from services.streams import notifications, stream, streamlog
from services.streams.domain import NotificationFormat
from services.streams.stream import StreamServer, StreamSettings
from shared.actors import Actor, OrgKind
from shared.audit.log import accesses
from shared.events import Envelope
from shared.sql import engine
from tests.conftest import HOSPITAL, MUNICIPALITY, OTHER_MUNICIPALITY
from tests.e2e.test_vendor_streams import (  # noqa: F401 - `world` is the module's fixture
    OPERATOR,
    OTHER_VENDOR,
    P1,
    P2,
    P3,
    VENDOR,
    World,
    received,
    register_organisation,
    subscribe,
    world,
)
from tests.support import auth, ctx, wait_for

#: Small pages, so a reader disconnects mid-replay; a short heartbeat, a quick head watcher.
SETTINGS = StreamSettings(heartbeat=0.3, page=5, poll=0.05)
VENDOR_ACTOR = Actor(VENDOR[0], OrgKind.REGISTRY)
OTHER_VENDOR_ACTOR = Actor(OTHER_VENDOR[0], OrgKind.REGISTRY)


@dataclass
class Streams:
    served: StreamServer
    loop: asyncio.AbstractEventLoop
    channel: grpc.Channel
    log: sa.Engine

    def open(
        self, name: str, actor: Actor = VENDOR_ACTOR, after: int = 0
    ) -> Iterator[streams_pb2.SubscribeResponse]:
        stub = streams_pb2_grpc.EventStreamServiceStub(self.channel)
        return stub.Subscribe(  # type: ignore[no-any-return]
            streams_pb2.SubscribeRequest(subscription=name, from_position=after),
            metadata=auth(actor),
        )


@pytest.fixture(scope="module")
def streams(world: World) -> Iterator[Streams]:  # noqa: F811
    """The stream server on its own event loop thread, as `python -m services.streams stream`
    composes it, on the world's databases."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    log_engine = engine(world.urls["streams"])
    control = world.system.access["pathway"].for_service({})
    started: Future[StreamServer] = asyncio.run_coroutine_threadsafe(
        stream.start(
            world.subscriptions.app, log_engine, control, world.system.tokens["pathway"],
            SETTINGS, "127.0.0.1:0", 4,
        ),
        loop,
    )  # fmt: skip
    served = started.result(30)
    # No bandwidth-delay probing: the reader's window stays at HTTP/2's default, so a stalled
    # reader holds the server back after a few dozen events.
    channel = grpc.insecure_channel(
        f"127.0.0.1:{served.server.port}", options=[("grpc.http2.bdp_probe", 0)]
    )
    try:
        yield Streams(served, loop, channel, log_engine)
    finally:
        channel.close()
        asyncio.run_coroutine_threadsafe(served.stop(0), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        log_engine.dispose()


def events(responses: Iterator[streams_pb2.SubscribeResponse], count: int) -> list[Any]:
    """The next `count` events of a stream (heartbeats in between skipped)."""
    got = []
    for response in responses:
        if response.WhichOneof("item") == "event":
            got.append(response.event)
            if len(got) == count:
                break
    return got


def until_heartbeat(responses: Iterator[streams_pb2.SubscribeResponse]) -> list[Any]:
    """The events up to the next heartbeat: what the stream had to send."""
    got = []
    for response in responses:
        if response.WhichOneof("item") == "heartbeat":
            return got
        got.append(response.event)
    raise AssertionError("the stream ended")


def logged(streams: Streams) -> int:
    return streamlog.head(streams.log)


def test_a_reader_that_disconnects_mid_replay_resumes_missing_nothing_and_nothing_twice(
    world: World,  # noqa: F811
    streams: Streams,
) -> None:
    subscribe(world, "stream-ehr", MUNICIPALITY.her_id)
    for i in range(8):
        world.prescribe(MUNICIPALITY, P1 if i % 2 else P3, f"Oppfølging {i}")
    world.prescribe(OTHER_MUNICIPALITY, P2, "Not Fjordvik's")
    queue = received(world, "stream-ehr", 8)  # the queue's view: the oracle

    first = streams.open("stream-ehr")
    replayed = events(first, 7)  # past the first page: mid-replay
    first.cancel()  # type: ignore[attr-defined]
    # more events arrive while the reader is away and while it catches up
    writer = threading.Thread(
        target=lambda: [world.prescribe(MUNICIPALITY, P1, f"Senere {i}") for i in range(6)]
    )
    writer.start()
    second = streams.open("stream-ehr", after=replayed[-1].position)
    writer.join()
    queue += received(world, "stream-ehr", 6)
    resumed = events(second, len(queue) - len(replayed))
    assert until_heartbeat(second) == []  # nothing more: no duplicate at the switch to live
    second.cancel()  # type: ignore[attr-defined]

    got = replayed + resumed
    assert [e.event_id for e in got] == [m["event_id"] for m in queue]
    positions = [e.position for e in got]
    assert positions == sorted(set(positions))
    # the same message as the queue's, byte for byte in meaning
    for event, message in zip(got, queue, strict=True):
        body = json.loads(event.body)
        assert body == {k: v for k, v in message.items() if not k.startswith("_")}
        assert body["patient"] in (P1, P3)  # never the other municipality's patient
        assert "reason" not in body["data"] and body["omitted"] == ["data.reason"]
        assert event.position == body["position"] and event.event_type == "MedicationPrescribed"


def test_free_text_reaches_a_stream_whose_subscription_allows_it(
    world: World,  # noqa: F811
    streams: Streams,
) -> None:
    subscribe(world, "stream-text", MUNICIPALITY.her_id, free_text=True)
    world.prescribe(MUNICIPALITY, P1, "Fritekst til journalen")
    (message,) = received(world, "stream-text", 1)
    responses = streams.open("stream-text", after=message["position"] - 1)
    (event,) = events(responses, 1)
    responses.cancel()  # type: ignore[attr-defined]
    assert json.loads(event.body)["data"]["reason"] == "Fritekst til journalen"


def test_another_vendor_naming_the_subscription_is_refused_and_audited(
    world: World,  # noqa: F811
    streams: Streams,
) -> None:
    subscribe(world, "stream-mine", MUNICIPALITY.her_id)
    for name in ("stream-mine", "no-such-subscription"):
        with pytest.raises(grpc.RpcError) as caught:
            next(streams.open(name, actor=OTHER_VENDOR_ACTOR))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "no access" in (caught.value.details() or "")
    # a care organisation is no vendor either
    with pytest.raises(grpc.RpcError) as caught:
        next(streams.open("stream-mine", actor=MUNICIPALITY))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    rows = accesses(world.system.audit_engine, None, 10_000, None)
    refusals = [
        r for r in rows
        if r.call == "EventStreamService/Subscribe" and r.outcome == "PERMISSION_DENIED"
    ]  # fmt: skip
    assert {r.actor_her_id for r in refusals} >= {OTHER_VENDOR[0], MUNICIPALITY.her_id}


def test_a_paused_subscriptions_stream_ends_and_will_not_open(
    world: World,  # noqa: F811
    streams: Streams,
) -> None:
    subscribe(world, "stream-paused", MUNICIPALITY.her_id)
    responses = streams.open("stream-paused", after=logged(streams))
    assert responses.__next__().WhichOneof("item") == "heartbeat"  # open and quiet
    world.subscriptions.pause(ctx(OPERATOR), "stream-paused")
    with pytest.raises(grpc.RpcError) as caught:
        for _ in responses:
            pass
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as caught:
        next(streams.open("stream-paused"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    world.subscriptions.resume(ctx(OPERATOR), "stream-paused")
    responses = streams.open("stream-paused", after=logged(streams))
    assert next(responses).WhichOneof("item") == "heartbeat"
    responses.cancel()  # type: ignore[attr-defined]


def test_a_quiet_stream_gets_heartbeats(world: World, streams: Streams) -> None:  # noqa: F811
    subscribe(world, "stream-quiet", MUNICIPALITY.her_id)
    head = logged(streams)
    responses = streams.open("stream-quiet", after=head)
    beats = [next(responses) for _ in range(3)]
    responses.cancel()  # type: ignore[attr-defined]
    assert [b.WhichOneof("item") for b in beats] == ["heartbeat"] * 3
    assert all(b.heartbeat.position >= head for b in beats)


def test_a_stalled_reader_holds_at_most_a_page_in_the_server(
    world: World,  # noqa: F811
    streams: Streams,
) -> None:
    # Events about no patient (the directory's), so thousands of copies need no care facts.
    subscribe(world, "stream-slow", MUNICIPALITY.her_id, event_types=("OrganisationRegistered",))
    register_organisation(world.system, "7766009", RegistryKind.REGISTRY, "Treg Leverandør AS")
    (template,) = received(world, "stream-slow", 1)
    start = template["position"] - 1
    # Thousands of events behind it, numbered in the stream log as the delivery numbers them.
    with streams.log.connect() as conn:
        text = conn.execute(
            sa.select(streamlog.stream_events.c.envelope).where(
                streamlog.stream_events.c.position == template["position"]
            )
        ).scalar_one()
    pending = 3000
    copies = []
    for _ in range(pending):
        body = json.loads(text)
        body["aggregate_id"] = str(uuid.uuid4())
        body["event_id"] = Envelope.make_event_id(body["aggregate_id"], body["aggregate_version"])
        copies.append(Envelope.from_json(json.dumps(body)))
    streamlog.append(streams.log, copies)
    servicer = streams.served.servicer
    responses = streams.open("stream-slow", after=start)
    first = events(responses, 1)  # the reader takes one event, then stalls
    assert first[0].position == template["position"]

    before = servicer.sent
    sent: list[int] = []

    def stalled() -> bool:
        # the server has stopped sending to this reader: flow control holds it
        sent.append(servicer.sent)
        return len(sent) > 50 and len(set(sent[-50:])) == 1

    wait_for(stalled, 60, "the server to be held back by the stalled reader")
    held_back = servicer.sent - before
    assert held_back < pending // 2  # the transport's window, not the backlog
    assert servicer.in_flight <= SETTINGS.page  # what the server holds: at most a page
    head = logged(streams)
    rest = events(responses, pending)  # the reader reads again: all of it, in order, once
    responses.cancel()  # type: ignore[attr-defined]
    assert [e.position for e in rest] == list(range(first[0].position + 1, head + 1))


def test_a_stream_delivery_is_on_the_audit_log_as_the_queues_is(
    world: World,  # noqa: F811
    streams: Streams,
) -> None:
    subscribe(world, "stream-audited", MUNICIPALITY.her_id)
    world.prescribe(MUNICIPALITY, P3, "Revidert")
    (message,) = received(world, "stream-audited", 1)
    responses = streams.open("stream-audited", after=message["position"] - 1)
    (event,) = events(responses, 1)
    responses.cancel()  # type: ignore[attr-defined]
    key = f"{P3['system']}|{P3['value']}"
    rows = [
        r for r in accesses(world.system.audit_engine, key, 1000, None)
        if r.call == "VendorDelivery/stream-audited"
    ]  # fmt: skip
    assert len(rows) == 2  # the queue's delivery and the stream's
    assert {(r.request_id, r.actor_her_id, r.outcome, r.basis) for r in rows} == {
        (event.event_id, MUNICIPALITY.her_id, "DELIVERED", "RESIDENCE_MUNICIPALITY")
    }


def test_a_stream_from_a_time_begins_with_the_first_event_recorded_then(
    world: World,  # noqa: F811
    streams: Streams,
) -> None:
    subscribe(world, "stream-since", MUNICIPALITY.her_id)
    world.prescribe(MUNICIPALITY, P1, "Fra et tidspunkt")
    (message,) = received(world, "stream-since", 1)
    since = Timestamp()
    since.FromDatetime(datetime.fromisoformat(message["recorded_at"]))
    stub = streams_pb2_grpc.EventStreamServiceStub(streams.channel)
    responses = stub.Subscribe(
        streams_pb2.SubscribeRequest(subscription="stream-since", from_time=since),
        metadata=auth(VENDOR_ACTOR),
    )
    got = until_heartbeat(responses)
    responses.cancel()
    assert [e.event_id for e in got] == [message["event_id"]]


def status_of(notification: bytes) -> SubscriptionStatus:
    """The SubscriptionStatus of a notification Bundle (validated as FHIR R5)."""
    bundle = Bundle.model_validate_json(notification)
    assert bundle.type == "subscription-notification"
    status = (bundle.entry or [])[0].resource
    assert isinstance(status, SubscriptionStatus)
    return status


def test_a_fhir_subscriptions_stream_handshakes_notifies_and_resumes_after_an_event_number(
    world: World,  # noqa: F811
    streams: Streams,
) -> None:
    """R5's shape on the stream: a handshake when it opens, each event an event-notification
    numbered with its position (the queue's same number), heartbeats as heartbeat
    notifications, and R5's `$events` recovery as `from_position` = the last eventNumber."""
    subscribe(
        world, "stream-fhir", MUNICIPALITY.her_id, notification_format=NotificationFormat.FHIR_R5
    )
    world.prescribe(MUNICIPALITY, P3, "FHIR første")
    world.prescribe(MUNICIPALITY, P1, "FHIR andre")
    positions = [m["_position_header"] for m in received(world, "stream-fhir", 2)]
    start = positions[0] - 1

    responses = streams.open("stream-fhir", after=start)
    opened = next(responses)
    assert opened.WhichOneof("item") == "handshake" and opened.handshake.position == start
    handshake = status_of(opened.handshake.notification)
    assert (handshake.type, handshake.eventsSinceSubscriptionStart) == ("handshake", start)
    (first,) = events(responses, 1)
    responses.cancel()  # type: ignore[attr-defined]
    assert first.content_type == notifications.CONTENT_TYPE
    status = status_of(first.body)
    (event,) = status.notificationEvent or []
    assert (status.type, event.eventNumber) == ("event-notification", positions[0])
    assert first.position == positions[0]
    carried = notifications.native_message(first.body)
    assert carried["patient"] == P3 and carried["position"] == positions[0]
    assert "reason" not in carried["data"]  # minimised as the native message is

    resumed = streams.open("stream-fhir", after=event.eventNumber)  # $events recovery
    assert next(resumed).WhichOneof("item") == "handshake"
    (second,) = events(resumed, 1)
    assert status_of(second.body).notificationEvent[0].eventNumber == positions[1]  # type: ignore[index]
    for response in resumed:  # nothing more: a heartbeat notification
        assert response.WhichOneof("item") == "heartbeat", "nothing twice"
        beat = status_of(response.heartbeat.notification)
        assert beat.type == "heartbeat" and not beat.notificationEvent
        assert beat.eventsSinceSubscriptionStart == response.heartbeat.position >= positions[1]
        break
    resumed.cancel()  # type: ignore[attr-defined]


def test_a_subscription_created_later_replays_an_event_no_subscription_wanted_then(
    world: World,  # noqa: F811
    streams: Streams,
) -> None:
    """The delivery numbers every event a vendor may receive, not only those a subscription
    wants at the time: no subscription here wants PatientAdmitted when P3 is admitted, and one
    created afterwards finds the admission in its history."""
    world.admit(HOSPITAL, P3)
    t = streamlog.stream_events

    def admitted() -> str | None:
        with streams.log.connect() as conn:
            found = conn.execute(
                sa.select(t.c.event_id).where(t.c.event_type == "PatientAdmitted")
            ).first()
        return None if found is None else str(found.event_id)

    event_id = wait_for(admitted, 30, "the admission in the stream log")
    subscribe(world, "stream-later", MUNICIPALITY.her_id, event_types=("PatientAdmitted",))
    responses = streams.open("stream-later", after=0)
    got = until_heartbeat(responses)
    responses.cancel()  # type: ignore[attr-defined]
    assert [e.event_id for e in got] == [event_id]
    assert json.loads(got[0].body)["patient"] == P3
