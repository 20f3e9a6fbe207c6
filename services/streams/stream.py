"""EventStreamService over grpc.aio: a vendor's events as a server stream — history from a
position or a time, then live, with no gap and no duplicate between the two.

The stream log (`stream_events`, services/streams/streamlog.py) is the one source: the vendor
delivery numbers every event there once, in commit order (one writer), before it delivers
anything. A stream reads it in pages of positions after the last one it has examined — the
history and the live events alike, so the switch from one to the other is no switch at all:
when a page comes back empty the stream waits for the log's head to move past its position
(one watcher per process polls the head and wakes every waiting stream) and reads on from
there. A position is never skipped (a page begins right after the last position examined) and
never sent twice (the position only grows).

What each event becomes is decided by `Selection.select`, the vendor delivery's own decision
(event types and sources, the access policy for the served organisations now, the patient's
blocks, minimisation for the purpose); each page's deliveries of a patient's event are put on
the audit log (one transaction) before any of them is sent.

Flow control: the servicer is an async generator; the aio server sends each message before it
asks for the next (HTTP/2 flow control holds it while the reader does not read), so a slow
reader holds at most one page of events in the server — never the events pending behind it.
Database work runs on a bounded pool of worker threads (`POOLS["stream-serve"]`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.engine import Engine

from carepath.v1 import streams_pb2, streams_pb2_grpc
from services.streams import notifications, streamlog
from services.streams.application import StreamsApplication
from services.streams.domain import NotificationFormat, SubscriptionState
from services.streams.filters import Route, vendor_contract
from services.streams.selection import Selection, content_type, message_of
from shared.access.enforce import AccessControl, Call, Owner
from shared.audit.log import AuditLog
from shared.auth import TokenVerifier
from shared.config import ServerTLS
from shared.errors import InvalidArgument
from shared.events import Envelope
from shared.grpc_aio import AioServer, start_aio_server
from shared.grpc_server import Failure
from shared.times import utc_iso

log = logging.getLogger(__name__)

T = TypeVar("T")

SERVICE_NAME = streams_pb2.DESCRIPTOR.services_by_name["EventStreamService"].full_name
SUBSCRIBE = f"/{SERVICE_NAME}/Subscribe"


@dataclass(frozen=True)
class StreamSettings:
    """shared.config.stream_settings(): heartbeat interval, page size, head poll interval."""

    heartbeat: float
    page: int
    poll: float


def not_active(route: Route | None) -> Failure:
    if route is None:
        return Failure(
            grpc.StatusCode.FAILED_PRECONDITION,
            "the subscription is deleted",
            "SUBSCRIPTION_NOT_ACTIVE",
        )
    return Failure(
        grpc.StatusCode.FAILED_PRECONDITION,
        f"the subscription is {route.state.value.lower()}: open the stream again once it is "
        "active, from your last position",
        "SUBSCRIPTION_NOT_ACTIVE",
    )


class Watcher:
    """The stream log's head and the subscriptions, for every open stream of the process: one
    task polls both every `poll` seconds and wakes the streams waiting for a new position."""

    def __init__(
        self, app: StreamsApplication, log_engine: Engine, poll: float, executor: ThreadPoolExecutor
    ) -> None:
        self._app = app
        self._log = log_engine
        self._poll = poll
        self._executor = executor
        #: Set (and replaced by a new one) whenever the head or the subscriptions change.
        self._moved = asyncio.Event()
        self._routes: dict[str, Route] = {}
        self._app_head = -1
        self.head = 0

    def _read(self) -> tuple[int, dict[str, Route] | None]:
        head = streamlog.head(self._log)
        app_head = self._app.head()
        if app_head == self._app_head:
            return head, None
        self._app_head = app_head
        return head, {s.name: Route.of(s) for s in self._app.subscriptions(True)}

    def refresh(self) -> None:
        """The subscriptions now (blocking: on a worker thread or before serving). The heads
        are left for `run` to notice, so it still wakes the waiting streams for the change."""
        self._routes = {s.name: Route.of(s) for s in self._app.subscriptions(True)}

    def route(self, name: str) -> Route | None:
        return self._routes.get(name)

    def owner(self, name: str) -> Owner | None:
        """The subscription's vendor organisation, for the access policy (the Subscribe rule's
        target, `TargetKind.OWNED`): on the admission's worker thread, so a subscription
        created a moment ago is read from the store."""
        route = self.route(name)
        if route is None:
            self.refresh()
            route = self.route(name)
        return None if route is None else Owner(route.vendor.her_id, route.vendor.orgnr)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                head, routes = await loop.run_in_executor(self._executor, self._read)
            except Exception as exc:  # a database away: the streams wait, then read on
                log.warning("stream watcher: %s", type(exc).__name__)
                head, routes = self.head, None
            if routes is not None:
                self._routes = routes
            if head > self.head or routes is not None:
                self.head = max(self.head, head)
                moved, self._moved = self._moved, asyncio.Event()
                moved.set()
            await asyncio.sleep(self._poll)

    async def wait(self, after: int, timeout: float) -> None:
        """Until the head is beyond `after`, the subscriptions changed, or `timeout`."""
        if self.head > after:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._moved.wait(), timeout)


class EventStreamServicer(streams_pb2_grpc.EventStreamServiceServicer):
    def __init__(
        self,
        watcher: Watcher,
        log_engine: Engine,
        selection: Selection,
        audit: AuditLog,
        settings: StreamSettings,
        executor: ThreadPoolExecutor,
    ) -> None:
        self._watcher = watcher
        self._log = log_engine
        self._selection = selection
        self._audit = audit
        self._settings = settings
        self._executor = executor
        #: Events taken from the log and not yet sent, over every open stream (the bound the
        #: flow-control test reads: at most a page per stream).
        self.in_flight = 0
        #: Events sent, over every stream since the start.
        self.sent = 0

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def check(self, call: Call, request: streams_pb2.SubscribeRequest) -> None:
        """Before the stream opens (the admission's thread, shared.grpc_aio), once the access
        policy has admitted the caller as the subscription's vendor (the rule's OWNED target,
        `Watcher.owner`; anyone else is refused and audited there, the same whether or not
        the subscription exists): the position is one, and the subscription is active."""
        if request.WhichOneof("from") == "from_position" and request.from_position < 0:
            raise InvalidArgument("from_position", "must be 0 or more")
        name = request.subscription.strip()
        route = self._watcher.route(name)
        if route is None or route.state is not SubscriptionState.ACTIVE:
            self._watcher.refresh()  # resumed a moment ago, before the watcher's next look
            route = self._watcher.route(name)
        if route is None or route.state is not SubscriptionState.ACTIVE:
            raise not_active(route)

    def _start(self, request: streams_pb2.SubscribeRequest) -> int:
        if request.WhichOneof("from") == "from_time":
            at = request.from_time.ToDatetime(tzinfo=UTC)
            return streamlog.before_time(self._log, utc_iso(at))
        return request.from_position

    def _page(self, route: Route, rows: Sequence[tuple[int, str]]) -> list[Any]:
        """The page's events as the subscription receives them, on the audit log."""
        # The log holds envelopes the delivery checked against the contract: typed again
        # without checking the envelope's fields a second time (half the cost of a page).
        envelopes = [(position, Envelope.from_stored(text)) for position, text in rows]
        wanted = [(e, [route]) for _, e in envelopes if route.wants(e)]
        positions = {e.event_id: position for position, e in envelopes}
        selected = self._selection.select(wanted, positions)
        self._audit.record([s.entry for s in selected if s.entry is not None])
        out = []
        now = datetime.now(UTC)
        kind = content_type(route)
        for s in selected:
            recorded = Timestamp()
            recorded.FromDatetime(s.envelope.recorded)
            out.append(
                streams_pb2.SubscribeResponse(
                    event=streams_pb2.StreamEvent(
                        position=s.position,
                        event_id=s.envelope.event_id,
                        event_type=s.envelope.event_type,
                        source=s.envelope.source,
                        recorded_at=recorded,
                        contract=vendor_contract(route.contract_version),
                        body=message_of(s, now),
                        content_type=kind,
                    )
                )
            )
        return out

    def _heartbeat(self, route: Route, position: int) -> streams_pb2.SubscribeResponse:
        now = datetime.now(UTC)
        at = Timestamp()
        at.FromDatetime(now)
        notification = b""
        if route.notification_format is NotificationFormat.FHIR_R5:
            notification = notifications.status_notification(
                route.name, route.state, notifications.HEARTBEAT, position, now
            )
        return streams_pb2.SubscribeResponse(
            heartbeat=streams_pb2.Heartbeat(position=position, at=at, notification=notification)
        )

    def _handshake(self, route: Route, position: int) -> streams_pb2.SubscribeResponse:
        """A FHIR_R5 subscription's stream opens with R5's `handshake` notification."""
        now = datetime.now(UTC)
        at = Timestamp()
        at.FromDatetime(now)
        notification = notifications.status_notification(
            route.name, route.state, notifications.HANDSHAKE, position, now
        )
        return streams_pb2.SubscribeResponse(
            handshake=streams_pb2.Handshake(position=position, at=at, notification=notification)
        )

    async def Subscribe(
        self, request: streams_pb2.SubscribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[streams_pb2.SubscribeResponse]:
        name = request.subscription.strip()
        after = await self._db(self._start, request)
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        settings = self._settings
        opened = self._watcher.route(name)
        if opened is not None and opened.notification_format is NotificationFormat.FHIR_R5:
            yield self._handshake(opened, after)
        while True:
            route = self._watcher.route(name)
            if route is None or route.state is not SubscriptionState.ACTIVE:
                raise not_active(route)
            rows = await self._db(streamlog.page, self._log, after, settings.page)
            if rows:
                page = await self._db(self._page, route, rows)
                pending = len(page)
                self.in_flight += pending
                try:
                    for response in page:
                        yield response  # sent before the generator is asked for the next
                        pending -= 1
                        self.in_flight -= 1
                        self.sent += 1
                finally:
                    self.in_flight -= pending
                after = rows[-1][0]
                if page:
                    quiet_since = loop.time()
                continue
            remaining = settings.heartbeat - (loop.time() - quiet_since)
            if remaining <= 0:
                yield self._heartbeat(route, after)
                quiet_since = loop.time()
                continue
            await self._watcher.wait(after, remaining)


@dataclass
class StreamServer:
    """A started event stream server: the aio server, its servicer and the head watcher."""

    server: AioServer
    servicer: EventStreamServicer
    watcher: Watcher
    _task: asyncio.Task[None]
    _executor: ThreadPoolExecutor

    async def stop(self, grace: float) -> None:
        await self.server.stop(grace)
        self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


async def start(
    app: StreamsApplication,
    log_engine: Engine,
    access: AccessControl,
    tokens: TokenVerifier,
    settings: StreamSettings,
    address: str,
    threads: int,
    tls: ServerTLS | None = None,
    max_open: int | None = None,
) -> StreamServer:
    """The one composition of the stream server (the process and the tests): `threads`
    workers for the databases (`POOLS["stream-serve"].size`)."""
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="stream-db")
    watcher = Watcher(app, log_engine, settings.poll, executor)
    await asyncio.get_running_loop().run_in_executor(executor, watcher.refresh)
    selection = Selection(access.facts, lambda: datetime.now(UTC))
    access = access.with_owners({"subscription": watcher.owner})
    servicer = EventStreamServicer(watcher, log_engine, selection, access.audit, settings, executor)

    def register(server: grpc.aio.Server) -> None:
        streams_pb2_grpc.add_EventStreamServiceServicer_to_server(servicer, server)

    server = await start_aio_server(
        address,
        register,
        (SERVICE_NAME,),
        tokens,
        access,
        tls=tls,
        maximum_concurrent_rpcs=max_open,
        checks={SUBSCRIBE: servicer.check},
    )
    task = asyncio.create_task(watcher.run())
    return StreamServer(server, servicer, watcher, task, executor)
