"""The pathway viewer: server-rendered pages for municipal care coordinators, and a page for
the citizen's own pathway and access list (services/viewer/citizen.py).

It reads everything through PathwayService over gRPC with the coordinator's own token, like any
other client, so the server's rules (a municipality sees only its patients) and its audit log
(every read, by whom, why) hold for the viewer too. The token lives in an HttpOnly cookie.
Organisations are shown by the names the directory gives them in each reply.

Pages (Norwegian paths, as the users read them):
    /logg-inn                     sign in (development: mint a token; always: paste one)
    /arbeidsliste                 the worklist: the municipality's patients, overdue first
    /pasient/{id}                 one patient's pathway: the picture, events, medications, tasks
    /pasient/{id}/innhold         the same page's body, re-fetched when a change arrives
    /pasient/{id}/hendelser       server-sent events: one per change of the pathway
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

from carepath.v1 import common_pb2, pathway_pb2
from services.viewer import citizen, present
from services.viewer.web import (
    COORDINATOR,
    HERE,
    Problem,
    Settings,
    SignInNeeded,
    Web,
)
from shared import rules
from shared.auth import Actor, OrgKind, Unauthenticated, bearer_metadata
from shared.ids import HerId, HprNumber, IdentifierError, NationalId

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


def create_app(settings: Settings) -> Starlette:
    """The composition root: the shared parts, the coordinators' pages and the citizen's."""
    web = Web(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        web.open()
        try:
            yield
        finally:
            await web.close()

    def signed_in(request: Request) -> tuple[Actor, str]:
        return web.signed_in(request, COORDINATOR)

    async def call(method: Any, request: Any, token: str) -> Any:
        return await web.call(method, request, token, COORDINATOR)

    # --- sign-in ---------------------------------------------------------------------------

    async def sign_in_page(request: Request) -> Response:
        return web.render("signin.html", dev=settings.dev_sign_in, error=None, actor=None)

    async def sign_in(request: Request) -> Response:
        form = await request.form()
        token = str(form.get("token") or "").strip()

        def refused(reason: str) -> Response:
            error = f"Innloggingen mislyktes: {reason}"
            return web.render("signin.html", 400, dev=settings.dev_sign_in, error=error, actor=None)

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
        else:
            return refused("lim inn et token fra innloggingstjenesten.")
        response = RedirectResponse("/arbeidsliste", status_code=303)
        web.keep_token(response, COORDINATOR, token)
        log.info("coordinator signed in (municipality %s)", actor.her_id)
        return response

    async def sign_out(request: Request) -> Response:
        settings.tokens.revoke(request.cookies.get(COORDINATOR.cookie, ""))
        response = RedirectResponse("/logg-inn", status_code=303)
        web.forget_token(response, COORDINATOR)
        return response

    # --- the worklist ----------------------------------------------------------------------

    def worklist_request(
        request: Request, actor: Actor
    ) -> tuple[pathway_pb2.ListPathwaysRequest, dict[str, str]]:
        view = request.query_params.get("vis", "apne")
        if view not in VIEWS:
            raise Problem(400, "Ukjent visning", f"Velg en av: {', '.join(VIEWS)}.")
        query = request.query_params.get("sok", "").replace(" ", "")  # checked by the service
        page = request.query_params.get("side", "")
        params = {"vis": view, "sok": query}
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
        )

    async def worklist_context(request: Request) -> dict[str, Any]:
        actor, token = signed_in(request)
        list_request, params = worklist_request(request, actor)
        reply = await call(web.pathway.ListPathways, list_request, token)
        now = datetime.now(UTC)
        return {
            "actor": actor,
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
        return web.render("_worklist_rows.html", **await worklist_context(request))

    # --- the patient page ------------------------------------------------------------------

    def patient_of(request: Request) -> common_pb2.PatientIdentifier:
        value = request.path_params["value"]
        try:
            national_id = NationalId.parse(value)
        except IdentifierError as exc:
            raise Problem(400, "Ugyldig pasientidentifikator", str(exc)) from exc
        return common_pb2.PatientIdentifier(system=national_id.system, value=national_id.value)

    def medications_at(request: Request) -> date | None:
        text = request.query_params.get("legemidler_per", "")
        if not text:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError as exc:
            raise Problem(400, "Ugyldig dato", "Skriv datoen som åååå-mm-dd.") from exc

    async def patient_context(request: Request) -> dict[str, Any]:
        actor, token = signed_in(request)
        patient = patient_of(request)
        at = medications_at(request)
        window = request.query_params.get("tidsrom", "alt")
        if window not in WINDOWS:
            raise Problem(400, "Ukjent tidsrom", f"Velg en av: {', '.join(WINDOWS)}.")
        get = pathway_pb2.GetPathwayRequest(patient=patient, purpose=PURPOSE)
        if at is not None:
            moment = Timestamp()
            moment.FromDatetime(min(rules.end_of_day(at), datetime.now(UTC)).astimezone(UTC))
            get.medications_at.CopyFrom(moment)
        reply: pathway_pb2.Pathway = await call(web.pathway.GetPathway, get, token)
        now = datetime.now(UTC)
        names = present.Directory.of(reply.organisations)
        return {
            "actor": actor,
            "names": names,
            "patient": patient,
            "reply": reply,
            "emergency": present.emergency(reply),
            "place": present.place(reply.location, names),
            "register_facts": present.register_facts(reply.relations, names),
            "picture": present.picture(reply, now.astimezone(present.OSLO), WINDOWS[window][1]),
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
        return web.render("_patient_body.html", **await patient_context(request))

    # --- live updates ----------------------------------------------------------------------

    async def changes(token: str, watch: pathway_pb2.WatchPathwayRequest) -> Response:
        """Server-sent events: `endring` for each change of the pathway(s) watched, a comment
        every 15 s to keep the connection open through proxies, `feil` when the stream ends."""

        async def stream() -> AsyncIterator[str]:
            call_ = web.pathway.WatchPathway(watch, metadata=bearer_metadata(token))
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
                    try:
                        change = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
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
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def patient_changes(request: Request) -> Response:
        _actor, token = signed_in(request)
        patient = patient_of(request)
        return await changes(
            token, pathway_pb2.WatchPathwayRequest(patient=patient, purpose=PURPOSE)
        )

    async def worklist_changes(request: Request) -> Response:
        actor, token = signed_in(request)
        watch = pathway_pb2.WatchPathwayRequest(municipality_her_id=actor.her_id, purpose=PURPOSE)
        return await changes(token, watch)

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
            Route("/arbeidsliste", worklist),
            Route("/arbeidsliste/innhold", worklist_rows),
            Route("/arbeidsliste/hendelser", worklist_changes),
            Route("/pasient/{value}", patient_page),
            Route("/pasient/{value}/innhold", patient_body),
            Route("/pasient/{value}/hendelser", patient_changes),
            *citizen.routes(web),
            Mount("/statisk", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        exception_handlers={SignInNeeded: on_sign_in_needed, Problem: on_problem},
        lifespan=lifespan,
    )
    return app
