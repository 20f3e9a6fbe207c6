"""What every page of the viewer shares: its settings, the gRPC stubs, rendering, the two
sign-ins (coordinator and citizen, each with its own cookie), and one way to call a service and
turn its errors into a Norwegian page.

Pages read through the services' gRPC contracts with the signed-in user's own token, like any
other client, so the services' access policy and audit log hold for the viewer too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from carepath.v1 import pathway_pb2_grpc, registry_pb2_grpc
from services.viewer import present
from shared import grpc_client
from shared.auth import Actor, OrgKind, Unauthenticated, bearer_metadata, verify_token

HERE = Path(__file__).parent
#: Personal health data is never kept by the browser or a proxy.
NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True)
class Settings:
    pathway_address: str
    #: RegistryService and AccessService (the citizen's access list).
    registry_address: str
    jwt_secret: str
    #: Development sign-in: pick a municipality (or, for a citizen, give a fødselsnummer) and
    #: get a token minted here. Off in production, where tokens come from the identity provider
    #: (HelseID; ID-porten via Helsenorge for citizens) and are pasted or forwarded.
    dev_sign_in: bool = True
    secure_cookies: bool = False


@dataclass(frozen=True)
class SignIn:
    """One kind of user's sign-in: the cookie its token lives in (HttpOnly, SameSite=Strict),
    the cookie's path, the one kind of token it takes, and its sign-in page."""

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
    cookie="carepath_token",
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
#: The cookie's lifetime; the token's own expiry still decides.
COOKIE_SECONDS = 8 * 3600


class Problem(Exception):
    """A page that cannot be shown: the HTTP status and a Norwegian explanation."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(title)
        self.status, self.title, self.detail = status, title, detail


class SignInNeeded(Exception):
    """No valid token: the user must sign in (again) on the sign-in page of their kind."""

    def __init__(self, sign_in: SignIn) -> None:
        super().__init__(sign_in.page)
        self.sign_in = sign_in


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
    """The viewer's shared parts, built once by `create_app` (its composition root)."""

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
            lane_name=present.lane_name,
            institution=present.institution,
            LOCATION=present.LOCATION,
            MEDICATION_STATE=present.MEDICATION_STATE,
            CANCER_MILESTONE=present.CANCER_MILESTONE,
            MUNICIPALITY=present.MUNICIPALITY,
            age=present.age,
            no_names=present.Directory(),
        )
        self._channels: list[grpc.aio.Channel] = []
        self.pathway: pathway_pb2_grpc.PathwayServiceAsyncStub
        self.access: registry_pb2_grpc.AccessServiceAsyncStub

    def open(self) -> None:
        pathway = grpc_client.aio_channel(self.settings.pathway_address)
        registry = grpc_client.aio_channel(self.settings.registry_address)
        self._channels = [pathway, registry]
        self.pathway = pathway_pb2_grpc.PathwayServiceStub(pathway)
        self.access = registry_pb2_grpc.AccessServiceStub(registry)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(
            self.templates.get_template(name).render(**context),
            status_code=status,
            headers=NO_STORE,
        )

    def signed_in(self, request: Request, sign_in: SignIn) -> tuple[Actor, str]:
        """The user and token of this sign-in's cookie; a token of another kind is refused."""
        token = request.cookies.get(sign_in.cookie, "")
        try:
            actor = verify_token(token, self.settings.jwt_secret)
        except Unauthenticated as exc:
            raise SignInNeeded(sign_in) from exc
        if actor.org_kind is not sign_in.kind:
            raise Problem(403, "Ingen tilgang", sign_in.wrong_kind)
        return actor, token

    def keep_token(self, response: Response, sign_in: SignIn, token: str) -> None:
        response.set_cookie(
            sign_in.cookie,
            token,
            max_age=COOKIE_SECONDS,
            path=sign_in.path,
            httponly=True,
            samesite="strict",
            secure=self.settings.secure_cookies,
        )

    def forget_token(self, response: Response, sign_in: SignIn) -> None:
        response.delete_cookie(
            sign_in.cookie,
            path=sign_in.path,
            httponly=True,
            samesite="strict",
            secure=self.settings.secure_cookies,
        )

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
