"""Events of the admissions service (exchange `admissions.events`): the hospital stay
(innleggelse), the PLO messages exchanged about it with the home municipality and their
application receipts, transfers and the close on discharge."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import StringConstraints

from shared.events.base import AppRecErrors, AppRecStatus, HerId, Payload, Uuid

#: Longest ward name (the admissions API's bound).
MAX_WARD = 200
Ward = Annotated[str, StringConstraints(min_length=1, max_length=MAX_WARD)]


class StayEvent(Payload):
    """An event of one hospital stay (the envelope's aggregate_id is the stay's id)."""

    source: ClassVar[str] = "admissions"


class PatientAdmitted(StayEvent):
    """A hospital admitted the patient: a stay opens.

    For an existing municipal service user, Helseopplysninger are due to the home municipality
    within 24 hours.

    Version 2 renamed `municipality_her_id` to `home_municipality_her_id` (docs/events.md,
    "Versions"); a version 1 event reads as version 2 with the same value."""

    schema_version: ClassVar[int] = 2

    hospital_her_id: HerId
    """The admitting hospital, responsible for the stay until a transfer."""
    ward: Ward
    """The ward (post) the patient lies on."""
    admission_type: Literal["ACUTE", "ELECTIVE"]
    """ACUTE (øyeblikkelig hjelp) or ELECTIVE (planned, usually for a referral)."""
    referral_id: Uuid | None
    """The referral this elective admission gives the care of, if any."""
    home_municipality_her_id: HerId
    """The patient's home municipality as the hospital gave it: the stay's messages
    (admission notice, Helseopplysninger, readiness notice) go to it. Informative only for
    everything else: who may see the patient, and who pays for days ready for discharge (the
    municipality the patient stays in, oppholdskommunen), follow the registers, never this
    field."""
    municipal_services_likely: bool
    """Whether the hospital expects the patient to need municipal services after discharge."""
    existing_service_user: bool
    """Whether the patient already receives municipal care services (the 24-hour
    Helseopplysninger deadline applies)."""


class PatientAdmittedV1(StayEvent):
    """A hospital admitted the patient: a stay opens (version 1, as published before
    version 2; still delivered to vendor subscriptions that receive contract version 1).

    Its `municipality_her_id` is version 2's `home_municipality_her_id`."""

    hospital_her_id: HerId
    """The admitting hospital, responsible for the stay until a transfer."""
    ward: Ward
    """The ward (post) the patient lies on."""
    admission_type: Literal["ACUTE", "ELECTIVE"]
    """ACUTE (øyeblikkelig hjelp) or ELECTIVE (planned, usually for a referral)."""
    referral_id: Uuid | None
    """The referral this elective admission gives the care of, if any."""
    municipality_her_id: HerId
    """The patient's home municipality as the hospital gave it (informative only: access and
    payment follow the registers, never this field)."""
    municipal_services_likely: bool
    """Whether the hospital expects the patient to need municipal services after discharge."""
    existing_service_user: bool
    """Whether the patient already receives municipal care services (the 24-hour
    Helseopplysninger deadline applies)."""

    @classmethod
    def event_type(cls) -> str:
        return "PatientAdmitted"


class AdmissionNoticeSent(StayEvent):
    """The responsible hospital sent *Melding om innlagt pasient* (logistics only) to the home
    municipality."""

    message_id: Uuid
    """The message's id; its application receipt names it."""
    to_her_id: HerId
    """The receiving municipality."""


class AdmissionReportReceived(StayEvent):
    """The home municipality sent its *Innleggelsesrapport* to the responsible hospital (it
    often arrives before the admission notice)."""

    message_id: Uuid
    """The message's id; its application receipt names it."""
    from_her_id: HerId
    """The sending municipality."""
    to_her_id: HerId
    """The receiving hospital."""


class HealthInformationSent(StayEvent):
    """The responsible hospital sent *Helseopplysninger* to the home municipality (again
    whenever they change)."""

    message_id: Uuid
    """The message's id; its application receipt names it."""
    to_her_id: HerId
    """The receiving municipality."""
    first: bool
    """True for the stay's first Helseopplysninger (which meet the 24-hour deadline)."""


class MessageReceiptRecorded(StayEvent):
    """The receiver of one of the stay's messages recorded its application receipt
    (AppRec)."""

    message_id: Uuid
    """The message answered."""
    status: AppRecStatus
    """The receipt's status."""
    errors: AppRecErrors
    """The errors found (none for OK; at least one otherwise)."""


class PatientTransferred(StayEvent):
    """The patient moved to another ward, or to another hospital, which then becomes
    responsible for the stay."""

    to_hospital_her_id: HerId
    """The hospital responsible from now on (the same one for a ward change)."""
    to_ward: Ward
    """The ward the patient lies on now."""


class StayClosed(StayEvent):
    """The stay ended: the patient was discharged (published after the discharge)."""

    reason: Literal["DISCHARGED"]
    """Why the stay closed."""


EVENTS: tuple[type[Payload], ...] = (
    PatientAdmitted,
    PatientAdmittedV1,
    AdmissionNoticeSent,
    AdmissionReportReceived,
    HealthInformationSent,
    MessageReceiptRecorded,
    PatientTransferred,
    StayClosed,
)
