"""What the coordinators' pages share (the purpose of their reads, the signed-in session, one
way to call a service), and what belongs to no page: the front door, the health check and the
two error pages every page may end in."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from carepath.v1 import common_pb2
from services.viewer.pages import citizen
from services.viewer.session import Session
from services.viewer.web import COORDINATOR, Problem, SignInNeeded, web_of

#: Why the viewer reads a pathway: recorded in the audit log with every read.
PURPOSE = common_pb2.ACCESS_PURPOSE_CARE_COORDINATION


def signed_in(request: Request, activity: bool = True) -> Session:
    """The coordinator's live session (`activity`: False for background refreshes and event
    streams, which do not keep an idle session alive)."""
    return web_of(request).signed_in(request, COORDINATOR, activity)


async def call(request: Request, method: Any, message: Any, session: Session) -> Any:
    """`method` (a stub's method) with the coordinator's token; a failure is a page."""
    return await web_of(request).call(method, message, session.token, COORDINATOR)


async def home(request: Request) -> Response:
    return RedirectResponse("/arbeidsliste", status_code=303)


async def health(request: Request) -> Response:
    return Response("ok", media_type="text/plain")


async def on_sign_in_needed(request: Request, exc: Exception) -> Response:
    """To the sign-in page of the user's kind; a fragment or an event stream gets 401 (its
    script sends the page there)."""
    assert isinstance(exc, SignInNeeded)
    if request.url.path.endswith(("/innhold", "/hendelser")):
        return Response("Logg inn på nytt", status_code=401)
    return RedirectResponse(exc.sign_in.page, status_code=303)


async def on_problem(request: Request, exc: Exception) -> Response:
    """The problem page, leading back to the home of the page's kind of user."""
    assert isinstance(exc, Problem)
    sign_in = citizen.SIGN_IN if citizen.is_citizen_path(request.url.path) else COORDINATOR
    return web_of(request).render(
        "error.html",
        exc.status,
        title=exc.title,
        detail=exc.detail,
        actor=None,
        home=sign_in.home,
        home_label=sign_in.home_label,
    )


ROUTES = [Route("/", home), Route("/helse", health)]
EXCEPTION_HANDLERS = {SignInNeeded: on_sign_in_needed, Problem: on_problem}
