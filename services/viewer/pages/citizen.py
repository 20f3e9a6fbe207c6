"""The citizen's own page (/innbygger), in Norwegian bokmål: their pathway in plain words and
who has looked at their data (innsynslogg), refused attempts and akuttilgang included.

The page only ever shows the signed-in citizen's own data: the patient is the token's own
`pid`, never a path or query parameter, so no address reaches anyone else's data; and
PathwayService and AccessService check the same (basis SELF) and put each read on the audit
log. The citizen's session has a cookie of its own (HttpOnly, SameSite=Strict, path
/innbygger): the coordinators' pages never receive it and refuse a citizen's session, and this
page refuses every session but a citizen's. Forms carry CSRF tokens as the coordinators' do.

Pages:
    /innbygger              the pathway and the access list (`?side=` pages the list)
    /innbygger/logg-inn     sign in (development, when turned on: give a fødselsnummer;
                            always: paste a token from ID-porten via Helsenorge)
    /innbygger/logg-ut      sign out (POST)
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from carepath.v1 import common_pb2, pathway_pb2, registry_pb2
from services.viewer import present
from services.viewer.web import CITIZEN, Refused, Web, web_of
from shared.actors import Actor, OrgKind
from shared.auth import Unauthenticated
from shared.ids import IdentifierError, NationalId

log = logging.getLogger(__name__)

SIGN_IN = CITIZEN
#: Why the page reads: the citizen's insight into their own data (recorded in the audit log).
PURPOSE = common_pb2.ACCESS_PURPOSE_CITIZEN_INSIGHT
ACCESS_PAGE_SIZE = 25
DENIED = "Du kan bare se dine egne opplysninger."


def is_citizen_path(path: str) -> bool:
    return path == SIGN_IN.home or path.startswith(f"{SIGN_IN.home}/")


def own_patient(actor: Actor) -> common_pb2.PatientIdentifier:
    """The signed-in citizen themself: the only patient this page ever asks about."""
    national_id = NationalId.parse(actor.pid or "")
    return common_pb2.PatientIdentifier(system=national_id.system, value=national_id.value)


def render_sign_in(request: Request, status: int = 200, error: str | None = None) -> Response:
    web = web_of(request)
    return web.render_sign_in(
        request,
        "citizen_signin.html",
        status,
        dev=web.settings.dev_sign_in,
        error=error,
        citizen=True,
    )


async def sign_in_page(request: Request) -> Response:
    return render_sign_in(request)


async def sign_in(request: Request) -> Response:
    form = await request.form()
    web = web_of(request)
    web.check_sign_in_form(request, form)
    token = str(form.get("token") or "").strip()
    try:
        if token:
            actor = token_actor(web, token)
        elif web.settings.dev_sign_in and web.settings.issuer:
            actor, token = development_actor(web, form)
        else:
            raise Refused("logg inn gjennom ID-porten, eller lim inn et token.")
    except Refused as exc:
        return render_sign_in(request, 400, f"Innloggingen mislyktes: {exc}")
    response = RedirectResponse(SIGN_IN.home, status_code=303)
    web.start_session(request, response, SIGN_IN, actor, token)
    log.info("citizen signed in")  # never who: a personal identifier is not logged
    return response


def token_actor(web: Web, token: str) -> Actor:
    """Who a pasted token names: it must hold, and be a citizen's."""
    try:
        actor = web.settings.tokens(token)
    except Unauthenticated as exc:
        raise Refused("tokenet er ugyldig eller utløpt.") from exc
    if actor.org_kind is not OrgKind.CITIZEN:
        raise Refused("tokenet gjelder ikke en innbygger.")
    return actor


def development_actor(web: Web, form: FormData) -> tuple[Actor, str]:
    """The development sign-in: a fødselsnummer, and a token minted for its citizen by the
    development issuer."""
    assert web.settings.issuer is not None
    try:
        actor = Actor.citizen(str(form.get("fodselsnummer") or "").replace(" ", ""))
    except IdentifierError as exc:
        raise Refused("fødselsnummeret er ikke gyldig (11 sifre).") from exc
    return actor, web.settings.issuer.mint(actor)


async def sign_out(request: Request) -> Response:
    form = await request.form()
    web = web_of(request)
    session = web.signed_in(request, SIGN_IN)
    web.check_form(form, session)
    response = RedirectResponse(SIGN_IN.page, status_code=303)
    web.end_session(request, response, SIGN_IN)
    return response


async def page(request: Request) -> Response:
    web = web_of(request)
    session = web.signed_in(request, SIGN_IN)
    actor, token = session.actor, session.token
    patient = own_patient(actor)
    side = request.query_params.get("side", "")  # an opaque page token: the service checks it
    # One after the other: the access list then includes this very read of the pathway.
    pathway = await web.call(
        web.pathway.GetPathway,
        pathway_pb2.GetPathwayRequest(patient=patient, purpose=PURPOSE),
        token,
        SIGN_IN,
        denied=DENIED,
        missing_ok=True,
    )
    accesses = await web.call(
        web.access.ListAccesses,
        registry_pb2.ListAccessesRequest(
            patient=patient, page_size=ACCESS_PAGE_SIZE, page_token=side
        ),
        token,
        SIGN_IN,
        service="Innsynstjenesten",
        denied=DENIED,
    )
    return web.render(
        "citizen.html",
        csrf=session.csrf,
        **context(actor, patient, pathway, accesses, side),
    )


def context(
    actor: Actor,
    patient: common_pb2.PatientIdentifier,
    reply: pathway_pb2.Pathway | None,
    accesses: registry_pb2.ListAccessesResponse,
    side: str,
) -> dict[str, Any]:
    names = present.Directory.of(reply.organisations if reply is not None else [])
    found: dict[str, Any] = {}
    if reply is not None:
        found = {
            "place": present.place(reply.location, names),
            "register_facts": present.register_facts(reply.relations, names),
            "referrals": present.open_referrals(reply, names),
            "medications": reply.medications.entries if reply.HasField("medications") else [],
            "timeline": list(reversed(reply.timeline)),
        }
    return {
        "actor": actor,
        "citizen": True,
        "names": names,
        "patient": patient,
        "reply": reply,
        **found,
        "accesses": [present.access_line(a) for a in accesses.accesses],
        "next_page": urlencode({"side": accesses.next_page_token})
        if accesses.next_page_token
        else None,
        "paged": bool(side),
        "now": datetime.now(UTC),
    }


ROUTES = [
    Route(SIGN_IN.home, page),
    Route(SIGN_IN.page, sign_in_page, methods=["GET"]),
    Route(SIGN_IN.page, sign_in, methods=["POST"]),
    Route(f"{SIGN_IN.home}/logg-ut", sign_out, methods=["POST"]),
]
