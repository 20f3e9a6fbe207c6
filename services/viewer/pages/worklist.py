"""The worklist (/arbeidsliste): the municipality's patients, overdue first, in one of the
views below, optionally narrowed by a search on the start of a fødselsnummer.

The search is posted, never put in an address: the worklist's address names it by a
reference of the session (`sok=`), as it names each patient (`/pasient/<ref>`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from carepath.v1 import common_pb2, municipal_pb2, pathway_pb2
from services.viewer import present
from services.viewer.pages.common import PURPOSE, call, signed_in
from services.viewer.pages.patient import patient_reference
from services.viewer.session import Session
from services.viewer.web import Problem, web_of

PAGE_SIZE = 25
#: What a search reference of a session stands for: ("søk", text).
SEARCH_REF = "søk"

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
    "hjemmesykepleie": (
        "Har hjemmesykepleie",
        {"service_kind": municipal_pb2.MUNICIPAL_SERVICE_KIND_HOME_NURSING},
    ),
    "praktisk-bistand": (
        "Har praktisk bistand",
        {"service_kind": municipal_pb2.MUNICIPAL_SERVICE_KIND_PRACTICAL_ASSISTANCE},
    ),
    "dagtilbud": (
        "Har dagtilbud",
        {"service_kind": municipal_pb2.MUNICIPAL_SERVICE_KIND_DAY_ACTIVITY},
    ),
    "hjemme-med-tjenester": (
        "Hjemme med tjenester",
        {"location_kind": pathway_pb2.LOCATION_KIND_HOME_WITH_SERVICES},
    ),
    "korttid": (
        "På korttidsopphold",
        {"location_kind": pathway_pb2.LOCATION_KIND_SHORT_TERM_NURSING_HOME},
    ),
    "langtid": (
        "På langtidsopphold",
        {"location_kind": pathway_pb2.LOCATION_KIND_LONG_TERM_NURSING_HOME},
    ),
    "rehabilitering": (
        "På rehabiliteringsopphold",
        {"location_kind": pathway_pb2.LOCATION_KIND_IN_REHABILITATION},
    ),
    "dode": ("Døde", {"location_kind": pathway_pb2.LOCATION_KIND_DECEASED}),
    "alle": ("Alle pasienter", {}),
}


def chosen_view(view: str) -> str:
    if view not in VIEWS:
        raise Problem(400, "Ukjent visning", f"Velg en av: {', '.join(VIEWS)}.")
    return view


def worklist_request(
    request: Request, session: Session
) -> tuple[pathway_pb2.ListPathwaysRequest, dict[str, str], str]:
    """The ListPathways request the address asks for, the address's own parameters, and the
    search (its text) it names."""
    view = chosen_view(request.query_params.get("vis", "apne"))
    search = request.query_params.get("sok", "")  # the session's reference to the search
    query = ""
    if search:
        found = session.resolve(search)
        if not (isinstance(found, tuple) and found[0] == SEARCH_REF):
            raise Problem(404, "Fant ikke søket", "Søk på nytt fra arbeidslisten.")
        query = str(found[1])
    params = {"vis": view, **({"sok": search} if search else {})}
    list_request = pathway_pb2.ListPathwaysRequest(
        municipality_her_id=session.actor.her_id,
        purpose=PURPOSE,
        page_size=PAGE_SIZE,
        page_token=request.query_params.get("side", ""),
        patient_query=query,
        **VIEWS[view][1],
    )
    return list_request, params, query


async def worklist_context(request: Request, activity: bool = True) -> dict[str, Any]:
    session = signed_in(request, activity)
    list_request, params, query = worklist_request(request, session)
    reply = await call(request, web_of(request).pathway.ListPathways, list_request, session)
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
        "now": datetime.now(UTC),
    }


async def worklist(request: Request) -> Response:
    return web_of(request).render("worklist.html", **await worklist_context(request))


async def worklist_rows(request: Request) -> Response:
    return web_of(request).render("_worklist_rows.html", **await worklist_context(request, False))


async def worklist_filter(request: Request) -> Response:
    """A new view or search: posted, so that the search (the start of a fødselsnummer)
    never lands in an address; the worklist's address names it by a reference."""
    form = await request.form()
    session = signed_in(request)
    web_of(request).check_form(form, session)
    params = {"vis": chosen_view(str(form.get("vis") or "apne"))}
    query = str(form.get("sok") or "").replace(" ", "")  # checked by the service
    if query:
        params["sok"] = session.reference((SEARCH_REF, query))
    return RedirectResponse(f"/arbeidsliste?{urlencode(params)}", status_code=303)


ROUTES = [
    Route("/arbeidsliste", worklist, methods=["GET"]),
    Route("/arbeidsliste", worklist_filter, methods=["POST"]),
    Route("/arbeidsliste/innhold", worklist_rows),
]
