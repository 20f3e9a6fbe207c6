"""One patient's page (/pasient/<ref>): the picture, the events, the medication list (now, or
as of a chosen day), the tasks and the register facts.

No personal identifier is ever in an address: `<ref>` is a reference the session gave the
patient on its worklist, or when the coordinator opened the patient by fødselsnummer (posted).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from google.protobuf.timestamp_pb2 import Timestamp
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from carepath.v1 import common_pb2, pathway_pb2
from services.viewer import present
from services.viewer.pages.common import PURPOSE, call, signed_in
from services.viewer.picture import picture
from services.viewer.session import Session
from services.viewer.web import Problem, web_of
from shared import rules
from shared.ids import IdentifierError, NationalId
from shared.times import OSLO

#: The picture's time windows: label and days up to the latest event (None: all of it).
WINDOWS: dict[str, tuple[str, int | None]] = {
    "alt": ("Hele forløpet", None),
    "90": ("Siste 3 måneder", 90),
    "30": ("Siste måned", 30),
}
#: What a patient reference of a session stands for: ("pasient", system, value).
PATIENT_REF = "pasient"
UNKNOWN_PATIENT = Problem(
    404,
    "Fant ikke pasienten",
    "Lenken gjelder ikke for denne innloggingen. Åpne pasienten fra arbeidslisten.",
)


def patient_reference(session: Session, patient: common_pb2.PatientIdentifier) -> str:
    """The session's opaque name for a patient, for the patient's links."""
    return session.reference((PATIENT_REF, patient.system, patient.value))


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
    web_of(request).check_form(form, session)
    try:
        national_id = NationalId.parse(str(form.get("pasient") or "").replace(" ", ""))
    except IdentifierError as exc:
        raise Problem(400, "Ugyldig pasientidentifikator", str(exc)) from exc
    patient = common_pb2.PatientIdentifier(system=national_id.system, value=national_id.value)
    return RedirectResponse(f"/pasient/{patient_reference(session, patient)}", 303)


def medications_at(request: Request) -> date | None:
    """The day the medication list is asked for (`legemidler_per`), or None: now."""
    text = request.query_params.get("legemidler_per", "")
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise Problem(400, "Ugyldig dato", "Skriv datoen som åååå-mm-dd.") from exc


def chosen_window(request: Request) -> str:
    window = request.query_params.get("tidsrom", "alt")
    if window not in WINDOWS:
        raise Problem(400, "Ukjent tidsrom", f"Velg en av: {', '.join(WINDOWS)}.")
    return window


def pathway_request(
    patient: common_pb2.PatientIdentifier, at: date | None
) -> pathway_pb2.GetPathwayRequest:
    """GetPathway, with the medication list as of the end of day `at` (never later than
    now)."""
    get = pathway_pb2.GetPathwayRequest(patient=patient, purpose=PURPOSE)
    if at is not None:
        moment = Timestamp()
        moment.FromDatetime(min(rules.end_of_day(at), datetime.now(UTC)).astimezone(UTC))
        get.medications_at.CopyFrom(moment)
    return get


async def patient_context(request: Request, activity: bool = True) -> dict[str, Any]:
    session = signed_in(request, activity)
    patient = patient_of(request, session)
    at = medications_at(request)
    window = chosen_window(request)
    get = pathway_request(patient, at)
    reply: pathway_pb2.Pathway = await call(
        request, web_of(request).pathway.GetPathway, get, session
    )
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
        "picture": picture(reply, now.astimezone(OSLO), WINDOWS[window][1]),
        "windows": {key: label for key, (label, _) in WINDOWS.items()},
        "window": window,
        "medications_at": at,
        "now": now,
        "query": urlencode(
            {"tidsrom": window, **({"legemidler_per": at.isoformat()} if at else {})}
        ),
    }


async def patient_page(request: Request) -> Response:
    return web_of(request).render("patient.html", **await patient_context(request))


async def patient_body(request: Request) -> Response:
    return web_of(request).render("_patient_body.html", **await patient_context(request, False))


ROUTES = [
    Route("/pasient", open_patient, methods=["POST"]),
    Route("/pasient/{ref}", patient_page),
    Route("/pasient/{ref}/innhold", patient_body),
]
