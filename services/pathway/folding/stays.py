"""The hospital-stay part of the fold: the responsible hospital and ward in turn, the stay's PLO
messages with their receipts, whether the health information went out (pure, no I/O)."""

from __future__ import annotations

from services.pathway.folding.model import PloMessage, StayView
from shared.events import Envelope, Payload
from shared.events import admissions as adm
from shared.times import utc_iso

#: Each PLO message of a stay: its name and the kind of organisation that receives it.
MESSAGE_NAMES: dict[type[Payload], tuple[str, str]] = {
    adm.AdmissionNoticeSent: ("Melding om innlagt pasient", "MUNICIPALITY"),
    adm.AdmissionReportReceived: ("Innleggelsesrapport", "HOSPITAL"),
    adm.HealthInformationSent: ("Helseopplysninger", "MUNICIPALITY"),
}


def step_stay(view: StayView | None, e: Envelope) -> StayView | None:
    """The stay after one more of its events (in version order); None while its admission has
    not arrived (the fold waits for it)."""
    when = utc_iso(e.occurred_at)
    if isinstance(e.data, adm.PatientAdmitted):
        admitted = e.data
        return StayView(
            stay_id=e.aggregate_id,
            hospital_her_id=admitted.hospital_her_id,
            ward=admitted.ward,
            admitted_at=when,
            since=when,
            existing_service_user=admitted.existing_service_user,
            municipal_services_likely=admitted.municipal_services_likely,
            hospitals=[(admitted.hospital_her_id, when)],
        )
    if view is None:  # later events arrived before the admission: wait for it
        return None
    match e.data:
        case (
            adm.AdmissionNoticeSent() | adm.AdmissionReportReceived() | adm.HealthInformationSent()
        ):
            name, to_kind = MESSAGE_NAMES[type(e.data)]
            view.messages[e.data.message_id] = PloMessage(
                name, e.data.to_her_id, to_kind, when, e.event_id
            )
            if isinstance(e.data, adm.HealthInformationSent):
                view.health_information_sent = True
        case adm.MessageReceiptRecorded(message_id=message_id, status=status) if (
            message_id in view.messages
        ):
            view.messages[message_id].receipt(status, when)
        case adm.PatientTransferred(to_hospital_her_id=hospital, to_ward=ward):
            view.hospital_her_id, view.ward, view.since = hospital, ward, when
            view.hospitals.append((hospital, when))
        case adm.StayClosed():
            view.closed_at = when
    return view
