"""The coordinators' sign-in (/logg-inn) and sign-out (/logg-ut).

A token from HelseID is pasted in, and must be a municipality's. With the development sign-in
turned on, a municipality of the organisation directory and an HPR-number will do: the
development issuer mints the token. The session (services/viewer/session.py) keeps the token;
the browser gets only the session's id.
"""

from __future__ import annotations

import logging

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from carepath.v1 import common_pb2, registry_pb2
from services.viewer.pages.common import signed_in
from services.viewer.web import COORDINATOR, Refused, Web, web_of
from shared.actors import Actor, OrgKind
from shared.auth import Unauthenticated
from shared.ids import HerId, HprNumber, IdentifierError

log = logging.getLogger(__name__)


def render_sign_in(request: Request, status: int = 200, error: str | None = None) -> Response:
    web = web_of(request)
    return web.render_sign_in(
        request, "signin.html", status, dev=web.settings.dev_sign_in, error=error, actor=None
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
            actor, token = await development_actor(web, form)
        else:
            raise Refused("logg inn gjennom HelseID, og lim inn tokenet derfra.")
    except Refused as exc:
        return render_sign_in(request, 400, f"Innloggingen mislyktes: {exc}")
    response = RedirectResponse("/arbeidsliste", status_code=303)
    web.start_session(request, response, COORDINATOR, actor, token)
    log.info("coordinator signed in (municipality %s)", actor.her_id)
    return response


def token_actor(web: Web, token: str) -> Actor:
    """Who a pasted token names: it must hold, and be a municipality's."""
    try:
        actor = web.settings.tokens(token)
    except Unauthenticated as exc:
        raise Refused("tokenet er ugyldig eller utløpt.") from exc
    if actor.org_kind is not OrgKind.MUNICIPALITY:
        raise Refused("tokenet gjelder ikke en kommune.")
    return actor


async def development_actor(web: Web, form: FormData) -> tuple[Actor, str]:
    """The development sign-in: a municipality of the directory and an HPR-number, and a
    token minted for them by the development issuer."""
    assert web.settings.issuer is not None
    try:
        her_id = HerId.parse(str(form.get("her_id") or "").strip()).value
    except IdentifierError as exc:
        raise Refused("kommunens HER-id er 1–9 sifre, uten null foran.") from exc
    try:
        hpr = HprNumber.parse(str(form.get("hpr") or "").strip()).value
    except IdentifierError as exc:
        raise Refused("HPR-nummeret er 1–9 sifre, uten null foran.") from exc
    actor = Actor(her_id=her_id, org_kind=OrgKind.MUNICIPALITY, hpr=hpr)
    token = web.settings.issuer.mint(actor)
    # The token is used for this one look-up, and kept only if the directory agrees.
    reason = await not_a_municipality(web, her_id, token)
    if reason is not None:
        web.revoke(token)
        log.info("development sign-in refused: HER-id %s is no municipality", her_id)
        raise Refused(reason)
    return actor, token


async def not_a_municipality(web: Web, her_id: str, token: str) -> str | None:
    """Why the development sign-in refuses `her_id`, or None: the organisation directory
    (Adresseregisteret, through RegistryService) must know it as a municipality."""
    reply = await web.call(
        web.registry.ListOrganisations,
        registry_pb2.ListOrganisationsRequest(her_ids=[her_id]),
        token,
        COORDINATOR,
        service="Adresseregisteret",
    )
    found = [o for o in reply.organisations if o.her_id == her_id]
    if not found:
        return f"HER-id {her_id} finnes ikke i Adresseregisteret."
    if found[0].kind != common_pb2.ORGANISATION_KIND_MUNICIPALITY:
        return f"HER-id {her_id} er {found[0].name}, ikke en kommune."
    return None


async def sign_out(request: Request) -> Response:
    form = await request.form()
    session = signed_in(request)
    web = web_of(request)
    web.check_form(form, session)
    response = RedirectResponse("/logg-inn", status_code=303)
    web.end_session(request, response, COORDINATOR)
    return response


ROUTES = [
    Route("/logg-inn", sign_in_page, methods=["GET"]),
    Route("/logg-inn", sign_in, methods=["POST"]),
    Route("/logg-ut", sign_out, methods=["POST"]),
]
