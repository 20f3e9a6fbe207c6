"""What every page of the viewer shares: its settings, the gRPC stubs, rendering, the two
sign-ins (coordinator and citizen, each with its own session cookie), the server-side sessions
(services/viewer/session.py), the forms' CSRF tokens, and one way to call a service and turn its
errors into a Norwegian page.

Pages read through the services' gRPC contracts with the signed-in user's own token, like any
other client, so the services' access policy and audit log hold for the viewer too.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from carepath.v1 import pathway_pb2_grpc, registry_pb2_grpc
from services.viewer import picture, present
from services.viewer.session import (
    DEFAULT_IDLE_SECONDS,
    DEFAULT_MAX_SECONDS,
    Session,
    Sessions,
    new_secret,
)
from shared import grpc_client
from shared.actors import Actor, OrgKind
from shared.auth import IssuerUnavailable, TokenVerifier, Unauthenticated, bearer_metadata
from shared.issuer import Issuer

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
#: The cookie that binds a sign-in form to the browser that fetched it (login CSRF).
PRE_SESSION_COOKIE = "carepath_forinnlogging"
#: The hidden field every POST form carries.
CSRF_FIELD = "csrf"


@dataclass(frozen=True)
class Settings:
    pathway_address: str
    #: RegistryService and AccessService (the citizen's access list).
    registry_address: str
    #: Checks tokens as the services do (issuer, revocation list); logout revokes through it.
    tokens: TokenVerifier
    #: Development sign-in: give a municipality of the organisation directory (or, for a
    #: citizen, a fødselsnummer) and get a token minted here by the local development issuer.
    #: Off unless turned on (`make run` does); in production tokens come from the identity
    #: provider (HelseID; ID-porten via Helsenorge for citizens).
    dev_sign_in: bool = False
    #: The local development issuer the development sign-in mints from (CAREPATH_DEV_ISSUER).
    issuer: Issuer | None = None
    #: Secure cookies even for a request that came over plain HTTP (they always are over TLS).
    secure_cookies: bool = False
    #: A session ends after this long without the user doing anything.
    idle_timeout_seconds: float = DEFAULT_IDLE_SECONDS
    #: ... and at the latest this long after sign-in (or when its token expires, if sooner).
    max_session_seconds: float = DEFAULT_MAX_SECONDS
    #: The viewer's own origin as browsers see it (`https://viewer.example.no`), which a POST's
    #: Origin (or Referer) must name; None: the scheme and Host of the request itself.
    public_origin: str | None = None


@dataclass(frozen=True)
class SignIn:
    """One kind of user's sign-in: the cookie its session id lives in (HttpOnly,
    SameSite=Strict), the cookie's path, the one kind of token it takes, and its sign-in page."""

    cookie: str
    path: str
    kind: OrgKind
    page: str
    #: What a signed-in user with a token of another kind is told.
    wrong_kind: str
    #: Where the problem page leads back to.
    home: str
    home_label: str


COORDINATOR = SignIn(
    cookie="carepath_sesjon",
    path="/",
    kind=OrgKind.MUNICIPALITY,
    page="/logg-inn",
    wrong_kind="Visningen er for kommunens koordinatorer.",
    home="/arbeidsliste",
    home_label="Til arbeidslisten",
)
CITIZEN = SignIn(
    cookie="carepath_innbygger",
    path="/innbygger",  # never sent to the coordinators' pages
    kind=OrgKind.CITIZEN,
    page="/innbygger/logg-inn",
    wrong_kind="Innbyggersiden er for innbyggere som er logget inn for seg selv.",
    home="/innbygger",
    home_label="Til forsiden",
)


class Problem(Exception):
    """A page that cannot be shown: the HTTP status and a Norwegian explanation."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(title)
        self.status, self.title, self.detail = status, title, detail


class Refused(Exception):
    """A sign-in refused: the reason, which the sign-in page shows."""


class SignInNeeded(Exception):
    """No valid token: the user must sign in (again) on the sign-in page of their kind."""

    def __init__(self, sign_in: SignIn) -> None:
        super().__init__(sign_in.page)
        self.sign_in = sign_in


def forged() -> Problem:
    """A form that did not come from this session's own page (CSRF)."""
    return Problem(
        403,
        "Skjemaet ble avvist",
        "Skjemaet kom ikke fra en side du har åpnet i carepath, eller siden er for gammel. "
        "Last siden på nytt og prøv igjen.",
    )


def token_expiry(token: str) -> float:
    """When a token the caller has already verified expires (epoch seconds): a session never
    outlives its token."""
    return float(jwt.decode(token, options={"verify_signature": False})["exp"])


def grpc_problem(code: grpc.StatusCode, service: str, denied: str) -> Problem:
    """The page for a failed call to `service` (its Norwegian name); `denied` says what
    PERMISSION_DENIED means on this page."""
    known = {
        grpc.StatusCode.PERMISSION_DENIED: (403, "Ingen tilgang", denied),
        grpc.StatusCode.NOT_FOUND: (
            404,
            "Fant ikke pasienten",
            "carepath har ingen hendelser for pasienten.",
        ),
        grpc.StatusCode.UNAVAILABLE: (
            503,
            "Tjenesten svarer ikke",
            f"{service} er ikke tilgjengelig akkurat nå. Prøv igjen om litt.",
        ),
        grpc.StatusCode.DEADLINE_EXCEEDED: (
            504,
            "Tjenesten svarte ikke i tide",
            f"{service} brukte for lang tid. Prøv igjen om litt.",
        ),
    }
    status, title, detail = known.get(code, (502, f"Feil i {service.lower()}", code.name))
    return Problem(status, title, detail)


class Web:
    """The viewer's shared parts, built once by `create_app` (its composition root), which
    keeps them on the application's state; each page gets them with `web_of(request)`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals.update(
            when=present.when,
            day=present.day,
            iso=present.iso,
            kroner=present.kroner,
            lane_name=picture.lane_name,
            institution=present.institution,
            LOCATION=present.LOCATION,
            SERVICE=present.SERVICE,
            SERVICE_STATE=present.SERVICE_STATE,
            SERVICE_END=present.SERVICE_END,
            MEDICATION_STATE=present.MEDICATION_STATE,
            CANCER_MILESTONE=present.CANCER_MILESTONE,
            CANCER_END_REASON=present.CANCER_END_REASON,
            MUNICIPALITY=present.MUNICIPALITY,
            age=present.age,
            no_names=present.Directory(),
        )
        self._channels: list[grpc.aio.Channel] = []
        self.pathway: pathway_pb2_grpc.PathwayServiceAsyncStub
        self.access: registry_pb2_grpc.AccessServiceAsyncStub
        self.registry: registry_pb2_grpc.RegistryServiceAsyncStub
        self.sessions = Sessions(settings.idle_timeout_seconds, settings.max_session_seconds)
        #: Binds sign-in forms to their pre-session cookie; new with every process.
        self._form_key = secrets.token_bytes(32)

    def open(self) -> None:
        pathway = grpc_client.aio_channel(self.settings.pathway_address)
        registry = grpc_client.aio_channel(self.settings.registry_address)
        self._channels = [pathway, registry]
        self.pathway = pathway_pb2_grpc.PathwayServiceStub(pathway)
        self.access = registry_pb2_grpc.AccessServiceStub(registry)
        self.registry = registry_pb2_grpc.RegistryServiceStub(registry)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        # Headers (CSP, no-store, ...) are added to every response by services.viewer.guard.
        return HTMLResponse(self.templates.get_template(name).render(**context), status_code=status)

    def signed_in(self, request: Request, sign_in: SignIn, activity: bool = True) -> Session:
        """The live session of this sign-in's cookie, whose token still holds; a session of
        another kind is refused. `activity`: False for background refreshes and event streams,
        which do not keep an idle session alive."""
        session = self.sessions.get(request.cookies.get(sign_in.cookie, ""), activity)
        if session is None:
            raise SignInNeeded(sign_in)
        try:
            self.settings.tokens(session.token)
        except Unauthenticated as exc:
            self.sessions.end(session.id)
            raise SignInNeeded(sign_in) from exc
        except IssuerUnavailable as exc:
            raise Problem(
                503,
                "Tjenesten svarer ikke",
                "Innloggingen kan ikke sjekkes nå. Prøv igjen om litt.",
            ) from exc
        if session.actor.org_kind is not sign_in.kind:
            raise Problem(403, "Ingen tilgang", sign_in.wrong_kind)
        return session

    def start_session(
        self, request: Request, response: Response, sign_in: SignIn, actor: Actor, token: str
    ) -> Session:
        """A new session for a verified token (any earlier one of the browser's ends), its id
        in the sign-in's cookie; the pre-session cookie has done its work."""
        self.end_session(request, response, sign_in)
        session = self.sessions.start(sign_in.cookie, actor, token, token_expiry(token))
        response.set_cookie(sign_in.cookie, session.id, **self._cookie(request, sign_in.path))
        response.delete_cookie(PRE_SESSION_COOKIE, **self._cookie(request, "/"))
        return session

    def end_session(self, request: Request, response: Response, sign_in: SignIn) -> Session | None:
        """Sign out: the session ends on the server and its cookie is removed. Returns the
        session it was (with its token), if it was live."""
        session = self.sessions.end(request.cookies.get(sign_in.cookie, ""))
        response.delete_cookie(sign_in.cookie, **self._cookie(request, sign_in.path))
        if session is not None:
            self.revoke(session.token)
        return session

    def revoke(self, token: str) -> None:
        """Put a token on the revocation list, so no service accepts it any more. The session
        holding it has ended already (the token never left the viewer), so a revocation list
        that cannot be written now costs defence in depth, not the sign-out: it is logged."""
        try:
            self.settings.tokens.revoke(token)
        except IssuerUnavailable:
            log.warning("a signed-out token could not be put on the revocation list")

    def _cookie(self, request: Request, path: str) -> dict[str, Any]:
        secure = self.settings.secure_cookies or request.url.scheme == "https"
        return {"path": path, "httponly": True, "samesite": "strict", "secure": secure}

    def check_form(self, form: FormData, session: Session) -> None:
        """A POST of a signed-in page must carry its session's CSRF token."""
        if not hmac.compare_digest(str(form.get(CSRF_FIELD) or ""), session.csrf):
            raise forged()

    def sign_in_form(self, request: Request) -> tuple[str, str]:
        """The pre-session cookie's value (new when the browser has none) and the token the
        sign-in form carries for it: a sign-in can only be posted by a page this browser got
        from the viewer, so another site cannot sign a user in as someone else."""
        value = request.cookies.get(PRE_SESSION_COOKIE) or new_secret()
        return value, self._form_token(value)

    def render_sign_in(
        self, request: Request, name: str, status: int = 200, **context: Any
    ) -> Response:
        """A sign-in page, its forms bound to this browser's pre-session cookie."""
        value, csrf = self.sign_in_form(request)
        response = self.render(name, status, csrf=csrf, **context)
        response.set_cookie(PRE_SESSION_COOKIE, value, **self._cookie(request, "/"))
        return response

    def check_sign_in_form(self, request: Request, form: FormData) -> None:
        value = request.cookies.get(PRE_SESSION_COOKIE, "")
        sent = str(form.get(CSRF_FIELD) or "")
        if not value or not hmac.compare_digest(sent, self._form_token(value)):
            raise forged()

    def _form_token(self, value: str) -> str:
        return hmac.new(self._form_key, value.encode(), hashlib.sha256).hexdigest()

    async def call(
        self,
        method: Callable[..., Any],
        request: Any,
        token: str,
        sign_in: SignIn,
        service: str = "Pasientforløpstjenesten",
        denied: str = "Pasienten hører ikke til din kommune, eller du har ikke tilgang til "
        "forløpet.",
        missing_ok: bool = False,
    ) -> Any:
        """The reply, or a page for the error (`missing_ok`: None for NOT_FOUND). An expired
        or refused token sends the user to their sign-in page."""
        try:
            return await method(request, metadata=bearer_metadata(token), timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise SignInNeeded(sign_in) from exc
            if exc.code() == grpc.StatusCode.NOT_FOUND and missing_ok:
                return None
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise Problem(400, "Ugyldig forespørsel", exc.details() or "") from exc
            raise grpc_problem(exc.code(), service, denied) from exc


def web_of(request: Request) -> Web:
    """The viewer's shared parts, where `create_app` put them: `app.state.web`."""
    web: Web = request.app.state.web
    return web
