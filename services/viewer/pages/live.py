"""Live updates: server-sent events fed by PathwayService's WatchPathway, one stream for a
patient's page (/pasient/<ref>/hendelser) and one for the worklist (/arbeidsliste/hendelser).
The page's script re-fetches its body (`/innhold`) on each change.

Events: `endring` for each change of the pathway(s) watched, a comment every 15 s to keep the
connection open through proxies, `feil` when the stream ends, `utlopt` when the session has
ended (idle or expired: the page goes to sign-in). A stream is no activity: an open page does
not keep an idle session alive.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator

import grpc
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from carepath.v1 import pathway_pb2
from services.viewer.pages.common import PURPOSE, signed_in
from services.viewer.pages.patient import patient_of
from services.viewer.session import Session
from services.viewer.web import Web, web_of
from shared.auth import bearer_metadata

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
Changes = asyncio.Queue[pathway_pb2.PathwayChange | None]


async def patient_changes(request: Request) -> Response:
    session = signed_in(request, activity=False)
    patient = patient_of(request, session)
    watch = pathway_pb2.WatchPathwayRequest(patient=patient, purpose=PURPOSE)
    return changes(web_of(request), session, watch)


async def worklist_changes(request: Request) -> Response:
    session = signed_in(request, activity=False)
    watch = pathway_pb2.WatchPathwayRequest(
        municipality_her_id=session.actor.her_id, purpose=PURPOSE
    )
    return changes(web_of(request), session, watch)


def changes(web: Web, session: Session, watch: pathway_pb2.WatchPathwayRequest) -> Response:
    return StreamingResponse(
        stream(web, session, watch),
        media_type="text/event-stream",
        headers={"X-Accel-Buffering": "no"},
    )


async def stream(
    web: Web, session: Session, watch: pathway_pb2.WatchPathwayRequest
) -> AsyncIterator[str]:
    """The event stream of one watch, until the watch or the session ends."""
    call = web.pathway.WatchPathway(watch, metadata=bearer_metadata(session.token))
    queue: Changes = asyncio.Queue()
    reader = asyncio.create_task(pump(call, queue))
    try:
        yield "retry: 3000\n\n"
        while True:
            if web.sessions.get(session.id, activity=False) is None:
                yield "event: utlopt\ndata: logg inn på nytt\n\n"
                return
            wait = min(HEARTBEAT_SECONDS, web.sessions.remaining(session) + 0.1)
            try:
                change = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                yield ": hold\n\n"
                continue
            if change is None:
                yield "event: feil\ndata: forbindelsen ble brutt\n\n"
                return
            yield f"event: endring\ndata: {change.sequence}\n\n"
    finally:
        call.cancel()
        reader.cancel()


async def pump(call: AsyncIterable[pathway_pb2.PathwayChange], queue: Changes) -> None:
    """The watch's changes into the queue, then None when the watch ends."""
    try:
        async for change in call:
            await queue.put(change)
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.CANCELLED:
            log.warning("pathway watch ended: %s", exc.code().name)
    finally:
        await queue.put(None)


ROUTES = [
    Route("/arbeidsliste/hendelser", worklist_changes),
    Route("/pasient/{ref}/hendelser", patient_changes),
]
