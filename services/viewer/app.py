"""The pathway viewer: server-rendered pages for municipal care coordinators, and a page for
the citizen's own pathway and access list (services/viewer/citizen.py).

It reads everything through PathwayService over gRPC with the coordinator's own token, like any
other client, so the server's rules (a municipality sees only its patients) and its audit log
(every read, by whom, why) hold for the viewer too. The token stays in the server-side session
(services/viewer/session.py); the browser holds only the session's id, in an HttpOnly cookie.
Organisations are shown by the names the directory gives them in each reply.

No personal identifier is ever in an address: a patient is `/pasient/<ref>`, a reference the
session gave the patient on its worklist, and a search is posted and kept as a reference too.
Every POST carries the session's CSRF token (sign-in: the pre-session cookie's) and must come
from the viewer's own origin (services/viewer/guard.py, which also sets the security headers).

Pages (Norwegian paths, as the users read them):
    /logg-inn                     sign in (development, when turned on: a municipality of the
                                  directory; always: paste a token from HelseID)
    /logg-ut                      sign out (POST)
    /arbeidsliste                 the worklist: the municipality's patients, overdue first
                                  (POST: a new filter or search)
    /pasient                      open a patient by fødselsnummer (POST; → /pasient/{ref})
    /pasient/{ref}                one patient's pathway: the picture, events, medications, tasks
    /pasient/{ref}/innhold        the same page's body, re-fetched when a change arrives
    /pasient/{ref}/hendelser      server-sent events: one per change of the pathway
    /arbeidsliste/hendelser       server-sent events: one per change of any listed patient
    /innbygger, /innbygger/...    the citizen's own page (citizen.py)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from carepath.v1 import common_pb2, pathway_pb2, registry_pb2
from services.viewer import citizen, present
from services.viewer.guard import Guard
from services.viewer.session import Session
from services.viewer.web import (
    COORDINATOR,
    HERE,
    Problem,
    Settings,
    SignInNeeded,
    Web,
)
from shared import rules
from shared.actors import Actor, OrgKind
from shared.auth import Unauthenticated, bearer_metadata
from shared.ids import HerId, HprNumber, IdentifierError, NationalId
from shared.times import OSLO

log = logging.getLogger(__name__)

#: Why the viewer reads a pathway: recorded in the audit log with every read.
PURPOSE = common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
PAGE_SIZE = 25
#: The picture's time windows: label and days up to the latest event (None: all of it).
WINDOWS: dict[str, tuple[str, int | None]] = {
    "alt": ("Hele forløpet", None),
    "90": ("Siste 3 måneder", 90),
    "30": ("Siste måned", 30),
}
HEARTBEAT_SECONDS = 15.0

#: The worklist's views: label and the ListPathways narrowing each one asks for.
VIEWS: dict[str, tuple[str, dict[str, Any]]] = {
    "apne": ("Alle med åpne oppgaver", {"only_with_open_tasks": True}),
    "overskredet": ("Frist overskredet", {"only_overdue": True}),
    "venter-pa-oss": (
        "Venter på oss (kommunen)",
        {"waiting_on": common_pb2.ORGANISATION_KIND_MUNICIPALITY},
    ),
    "venter-pa-sykehus": (
        "Venter på sykehuset",
        {"waiting_on": common_pb2.ORGANISATION_KIND_HOSPITAL},
    ),
    "venter-pa-fastlege": (
        "Venter på fastlegen",
        {"waiting_on": common_pb2.ORGANISATION_KIND_GP},
    ),
    "innlagt": ("Innlagt nå", {"location_kind": pathway_pb2.LOCATION_KIND_HOSPITAL}),
    "utskrivningsklar": ("Utskrivningsklare", {"only_ready_for_discharge": True}),
    "alle": ("Alle pasienter", {}),
}


#: What a patient reference of a session stands for: ("pasient", system, value).
PATIENT_REF = "pasient"
#: ... and a search of the worklist: ("søk", text).
SEARCH_REF = "søk"
UNKNOWN_PATIENT = Problem(
    404,
    "Fant ikke pasienten",
    "Lenken gjelder ikke for denne innloggingen. Åpne pasienten fra arbeidslisten.",
)


def patient_reference(session: Session, patient: common_pb2.PatientIdentifier) -> str:
    """The session's opaque name for a patient, for the patient's links."""
    return session.reference((PATIENT_REF, patient.system, patient.value))


def create_app(settings: Settings) -> ASGIApp:
    """The composition root: the shared parts, the coordinators' pages and the citizen's,
    inside the guard (headers, same-origin POSTs)."""
    web = Web(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        web.open()
        try:
            yield
        finally:
            await web.close()

    def signed_in(request: Request, activity: bool = True) -> Session:
        return web.signed_in(request, COORDINATOR, activity)

    async def call(method: Any, request: Any, session: Session) -> Any:
        return await web.call(method, request, session.token, COORDINATOR)

    # --- sign-in ---------------------------------------------------------------------------

    def render_sign_in(request: Request, status: int = 200, error: str | None = None) -> Response:
        return web.render_sign_in(
            request, "signin.html", status, dev=settings.dev_sign_in, error=error, actor=None
        )

    async def sign_in_page(request: Request) -> Response:
        return render_sign_in(request)

    async def not_a_municipality(her_id: str, token: str) -> str | None:
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

    async def sign_in(request: Request) -> Response:
        form = await request.form()
        web.check_sign_in_form(request, form)
        token = str(form.get("token") or "").strip()

        def refused(reason: str) -> Response:
            return render_sign_in(request, 400, f"Innloggingen mislyktes: {reason}")

        if token:
            try:
                actor = settings.tokens(token)
            except Unauthenticated:
                return refused("tokenet er ugyldig eller utløpt.")
            if actor.org_kind is not OrgKind.MUNICIPALITY:
                return refused("tokenet gjelder ikke en kommune.")
        elif settings.dev_sign_in and settings.issuer:
            try:
                her_id = HerId.parse(str(form.get("her_id") or "").strip()).value
            except IdentifierError:
                return refused("kommunens HER-id er 1–9 sifre, uten null foran.")
            try:
                hpr = HprNumber.parse(str(form.get("hpr") or "").strip()).value
            except IdentifierError:
                return refused("HPR-nummeret er 1–9 sifre, uten null foran.")
            actor = Actor(her_id=her_id, org_kind=OrgKind.MUNICIPALITY, hpr=hpr)
            token = settings.issuer.mint(actor)
            # The token is used for this one look-up, and kept only if the directory agrees.
            reason = await not_a_municipality(her_id, token)
            if reason is not None:
                web.revoke(token)
                log.info("development sign-in refused: HER-id %s is no municipality", her_id)
                return refused(reason)
        else:
            return refused("logg inn gjennom HelseID, og lim inn tokenet derfra.")
        response = RedirectResponse("/arbeidsliste", status_code=303)
        web.start_session(request, response, COORDINATOR, actor, token)
        log.info("coordinator signed in (municipality %s)", actor.her_id)
        return response

    async def sign_out(request: Request) -> Response:
        form = await request.form()
        session = signed_in(request)
        web.check_form(form, session)
        response = RedirectResponse("/logg-inn", status_code=303)
        web.end_session(request, response, COORDINATOR)
        return response

    # --- the worklist ----------------------------------------------------------------------

    def chosen_view(view: str) -> str:
        if view not in VIEWS:
            raise Problem(400, "Ukjent visning", f"Velg en av: {', '.join(VIEWS)}.")
        return view

    def worklist_request(
        request: Request, session: Session
    ) -> tuple[pathway_pb2.ListPathwaysRequest, dict[str, str], str]:
        actor = session.actor
        view = chosen_view(request.query_params.get("vis", "apne"))
        search = request.query_params.get("sok", "")  # the session's reference to the search
        query = ""
        if search:
            found = session.resolve(search)
            if not (isinstance(found, tuple) and found[0] == SEARCH_REF):
                raise Problem(404, "Fant ikke søket", "Søk på nytt fra arbeidslisten.")
            query = str(found[1])
        page = request.query_params.get("side", "")
        params = {"vis": view, **({"sok": search} if search else {})}
        return (
            pathway_pb2.ListPathwaysRequest(
                municipality_her_id=actor.her_id,
                purpose=PURPOSE,
                page_size=PAGE_SIZE,
                page_token=page,
                patient_query=query,
                **VIEWS[view][1],
            ),
            params,
            query,
        )

    async def worklist_context(request: Request, activity: bool = True) -> dict[str, Any]:
        session = signed_in(request, activity)
        list_request, params, query = worklist_request(request, session)
        reply = await call(web.pathway.ListPathways, list_request, session)
        now = datetime.now(UTC)
        return {
            "actor": session.actor,
            "csrf": session.csrf,
            "patient_ref": lambda patient: patient_reference(session, patient),
            "search": query,
            "names": present.Directory.of(reply.organisations),
            "items": reply.items,
            "views": {key: label for key, (label, _) in VIEWS.items()},
            "params": params,
            "next_page": urlencode({**params, "side": reply.next_page_token})
            if reply.next_page_token
            else None,
            "first_page": urlencode(params) if list_request.page_token else None,
            "fragment_query": urlencode({**params, "side": list_request.page_token}),
            "now": now,
        }

    async def worklist(request: Request) -> Response:
        return web.render("worklist.html", **await worklist_context(request))

    async def worklist_rows(request: Request) -> Response:
        return web.render("_worklist_rows.html", **await worklist_context(request, False))

    async def worklist_filter(request: Request) -> Response:
        """A new view or search: posted, so that the search (the start of a fødselsnummer)
        never lands in an address; the worklist's address names it by a reference."""
        form = await request.form()
        session = signed_in(request)
        web.check_form(form, session)
        params = {"vis": chosen_view(str(form.get("vis") or "apne"))}
        query = str(form.get("sok") or "").replace(" ", "")  # checked by the service
        if query:
            params["sok"] = session.reference((SEARCH_REF, query))
        return RedirectResponse(f"/arbeidsliste?{urlencode(params)}", status_code=303)

    # --- the patient page ------------------------------------------------------------------

    def patient_of(request: Request, session: Session) -> common_pb2.PatientIdentifier:
        """The patient this session's reference in the address stands for; any other
        reference (unknown, or another session's) is the same 404."""
        found = session.resolve(request.path_params["ref"])
        if not (isinstance(found, tuple) and found[0] == PATIENT_REF):
            raise UNKNOWN_PATIENT
        return common_pb2.PatientIdentifier(system=str(found[1]), value=str(found[2]))

    async def open_patient(request: Request) -> Response:
        """Open a patient by fødselsnummer or D-number (posted, never in an address): the
        session names the patient by a new reference; PathwayService decides on access (a
        patient outside the municipality's care, e.g. for akuttilgang)."""
        form = await request.form()
        session = signed_in(request)
        web.check_form(form, session)
        try:
            national_id = NationalId.parse(str(form.get("pasient") or "").replace(" ", ""))
        except IdentifierError as exc:
            raise Problem(400, "Ugyldig pasientidentifikator", str(exc)) from exc
        patient = common_pb2.PatientIdentifier(system=national_id.system, value=national_id.value)
        return RedirectResponse(f"/pasient/{patient_reference(session, patient)}", 303)

    def medications_at(request: Request) -> date | None:
        text = request.query_params.get("legemidler_per", "")
        if not text:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError as exc:
            raise Problem(400, "Ugyldig dato", "Skriv datoen som åååå-mm-dd.") from exc

    async def patient_context(request: Request, activity: bool = True) -> dict[str, Any]:
        session = signed_in(request, activity)
        patient = patient_of(request, session)
        at = medications_at(request)
        window = request.query_params.get("tidsrom", "alt")
        if window not in WINDOWS:
            raise Problem(400, "Ukjent tidsrom", f"Velg en av: {', '.join(WINDOWS)}.")
        get = pathway_pb2.GetPathwayRequest(patient=patient, purpose=PURPOSE)
        if at is not None:
            moment = Timestamp()
            moment.FromDatetime(min(rules.end_of_day(at), datetime.now(UTC)).astimezone(UTC))
            get.medications_at.CopyFrom(moment)
        reply: pathway_pb2.Pathway = await call(web.pathway.GetPathway, get, session)
        now = datetime.now(UTC)
        names = present.Directory.of(reply.organisations)
        return {
            "actor": session.actor,
            "csrf": session.csrf,
            "ref": request.path_params["ref"],
            "names": names,
            "patient": patient,
            "reply": reply,
            "emergency": present.emergency(reply),
            "place": present.place(reply.location, names),
            "register_facts": present.register_facts(reply.relations, names),
            "picture": present.picture(reply, now.astimezone(OSLO), WINDOWS[window][1]),
            "windows": {key: label for key, (label, _) in WINDOWS.items()},
            "window": window,
            "medications_at": at,
            "now": now,
            "query": urlencode(
                {"tidsrom": window, **({"legemidler_per": at.isoformat()} if at else {})}
            ),
        }

    async def patient_page(request: Request) -> Response:
        return web.render("patient.html", **await patient_context(request))

    async def patient_body(request: Request) -> Response:
        return web.render("_patient_body.html", **await patient_context(request, False))

    # --- live updates ----------------------------------------------------------------------

    async def changes(session: Session, watch: pathway_pb2.WatchPathwayRequest) -> Response:
        """Server-sent events: `endring` for each change of the pathway(s) watched, a comment
        every 15 s to keep the connection open through proxies, `feil` when the stream ends,
        `utlopt` when the session has ended (idle or expired: the page goes to sign-in)."""

        async def stream() -> AsyncIterator[str]:
            call_ = web.pathway.WatchPathway(watch, metadata=bearer_metadata(session.token))
            queue: asyncio.Queue[pathway_pb2.PathwayChange | None] = asyncio.Queue()

            async def pump() -> None:
                try:
                    async for change in call_:
                        await queue.put(change)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.CANCELLED:
                        log.warning("pathway watch ended: %s", exc.code().name)
                finally:
                    await queue.put(None)

            reader = asyncio.create_task(pump())
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
                call_.cancel()
                reader.cancel()

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"}
        )

    async def patient_changes(request: Request) -> Response:
        session = signed_in(request, activity=False)
        patient = patient_of(request, session)
        return await changes(
            session, pathway_pb2.WatchPathwayRequest(patient=patient, purpose=PURPOSE)
        )

    async def worklist_changes(request: Request) -> Response:
        session = signed_in(request, activity=False)
        watch = pathway_pb2.WatchPathwayRequest(
            municipality_her_id=session.actor.her_id, purpose=PURPOSE
        )
        return await changes(session, watch)

    async def home(request: Request) -> Response:
        return RedirectResponse("/arbeidsliste", status_code=303)

    async def health(request: Request) -> Response:
        return Response("ok", media_type="text/plain")

    async def on_sign_in_needed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInNeeded)
        if request.url.path.endswith(("/innhold", "/hendelser")):
            return Response("Logg inn på nytt", status_code=401)
        return RedirectResponse(exc.sign_in.page, status_code=303)

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        sign_in = citizen.SIGN_IN if citizen.is_citizen_path(request.url.path) else COORDINATOR
        return web.render(
            "error.html",
            exc.status,
            title=exc.title,
            detail=exc.detail,
            actor=None,
            home=sign_in.home,
            home_label=sign_in.home_label,
        )

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/helse", health),
            Route("/logg-inn", sign_in_page, methods=["GET"]),
            Route("/logg-inn", sign_in, methods=["POST"]),
            Route("/logg-ut", sign_out, methods=["POST"]),
            Route("/arbeidsliste", worklist, methods=["GET"]),
            Route("/arbeidsliste", worklist_filter, methods=["POST"]),
            Route("/arbeidsliste/innhold", worklist_rows),
            Route("/arbeidsliste/hendelser", worklist_changes),
            Route("/pasient", open_patient, methods=["POST"]),
            Route("/pasient/{ref}", patient_page),
            Route("/pasient/{ref}/innhold", patient_body),
            Route("/pasient/{ref}/hendelser", patient_changes),
            *citizen.routes(web),
            Mount("/statisk", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        exception_handlers={SignInNeeded: on_sign_in_needed, Problem: on_problem},
        lifespan=lifespan,
    )
    return Guard(app, web)
