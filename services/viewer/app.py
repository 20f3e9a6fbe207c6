"""The pathway viewer: server-rendered pages for municipal care coordinators, and a page for
the citizen's own pathway and access list.

It reads everything through PathwayService over gRPC with the coordinator's own token, like any
other client, so the server's rules (a municipality sees only its patients) and its audit log
(every read, by whom, why) hold for the viewer too. The token stays in the server-side session
(services/viewer/session.py); the browser holds only the session's id, in an HttpOnly cookie.
Organisations are shown by the names the directory gives them in each reply.

No personal identifier is ever in an address: a patient is `/pasient/<ref>`, a reference the
session gave the patient on its worklist, and a search is posted and kept as a reference too.
Every POST carries the session's CSRF token (sign-in: the pre-session cookie's) and must come
from the viewer's own origin (services/viewer/guard.py, which also sets the security headers).

The pages, one module each, are listed in services/viewer/pages/__init__.py; this module only
puts them together.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from services.viewer.guard import Guard
from services.viewer.pages import citizen, common, live, patient, signin, statistics, worklist
from services.viewer.web import HERE, Settings, Web


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """The gRPC channels open while the app serves."""
    web: Web = app.state.web
    web.open()
    try:
        yield
    finally:
        await web.close()


def create_app(settings: Settings) -> ASGIApp:
    """The composition root: the shared parts (`Web`: settings, gRPC stubs, sessions,
    templates) on the app's state, the coordinators' pages and the citizen's, the static
    files, all inside the guard (headers, same-origin POSTs)."""
    web = Web(settings)
    app = Starlette(
        routes=[
            *common.ROUTES,
            *signin.ROUTES,
            *worklist.ROUTES,
            *patient.ROUTES,
            *live.ROUTES,
            *statistics.ROUTES,
            *citizen.ROUTES,
            Mount("/statisk", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        exception_handlers=common.EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.web = web
    return Guard(app, web)
