"""Events of the discharges service (exchange `discharges.events`): readiness for discharge
(utskrivningsklar), the municipality's answer, withdrawal (avmelding), the discharge and its
messages (utskrivningsrapport, epikrise) with their application receipts."""

from __future__ import annotations

from typing import ClassVar, Literal

from shared.events.base import AppRecErrors, AppRecStatus, Day, HerId, Payload, Text, Uuid

Destination = Literal[
    "HOME",
    "HOME_WITH_SERVICES",
    "SHORT_TERM_NURSING_HOME",
    "LONG_TERM_NURSING_HOME",
    "OTHER_HOSPITAL",
]


class DischargeEvent(Payload):
    """An event of one stay's discharge (the envelope's aggregate_id is the discharge's id)."""

    source: ClassVar[str] = "discharges"


class PatientDeclaredReadyForDischarge(DischargeEvent):
    """The responsible hospital declared the patient ready for discharge (utskrivningsklar) and
    sent *Melding om utskrivningsklar pasient* to the home municipality.

    A readiness period starts: the municipality must answer, and from this day it pays for each
    day it cannot receive the patient — if the notice carries what the regulation requires (the
    four content fields below; rules.toml [discharge_payment.conditions]).

    Version 2 added the notice's content (`status`, `functional_level`, `expected_course`,
    `follow_up_needs`); a version 1 event reads as version 2 with each of them null (not
    recorded)."""

    schema_version: ClassVar[int] = 2

    stay_id: Uuid
    """The hospital stay (admissions' aggregate id)."""
    hospital_her_id: HerId
    """The hospital responsible for the stay."""
    municipality_her_id: HerId
    """The municipality notified (the stay's home municipality)."""
    message_id: Uuid
    """The readiness notice's id; its application receipt names it."""
    status: Text | None
    """The patient's status: the problems at admission and those found since, clarified (or
    why one is left open). Clinical free text; null when the notice did not say."""
    functional_level: Text | None
    """The patient's overall functional level, its change and expected development. Clinical
    free text; null when the notice did not say."""
    expected_course: Text | None
    """The expected course from here. Clinical free text; null when the notice did not say."""
    follow_up_needs: Text | None
    """The follow-up the patient needs from the municipality and others. Clinical free text;
    null when the notice did not say."""


class PatientDeclaredReadyForDischargeV1(DischargeEvent):
    """The responsible hospital declared the patient ready for discharge (version 1, as
    published before version 2; still delivered to vendor subscriptions that receive contract
    versions 1 and 2). Version 2 adds the notice's content."""

    stay_id: Uuid
    """The hospital stay (admissions' aggregate id)."""
    hospital_her_id: HerId
    """The hospital responsible for the stay."""
    municipality_her_id: HerId
    """The municipality notified (the stay's home municipality)."""
    message_id: Uuid
    """The readiness notice's id; its application receipt names it."""

    @classmethod
    def event_type(cls) -> str:
        return "PatientDeclaredReadyForDischarge"


class MunicipalityAnsweredReadiness(DischargeEvent):
    """The home municipality answered whether, and from which day, it can receive the patient
    declared ready."""

    can_receive: bool
    """Whether it can receive the patient."""
    receive_on: Day | None
    """The day it can receive the patient (set exactly when can_receive is true); municipal
    payment for the period ends that day."""


class ReadinessWithdrawn(DischargeEvent):
    """Avmelding: the patient needs more hospital care; the readiness period ends (no payment
    for the days after)."""

    schema_version: ClassVar[int] = 2

    reason: Text
    """Why: clinical free text from the hospital."""
    message_id: Uuid | None
    """The *Avmelding av utskrivningsklar pasient* sent to the notified municipality, which
    answers it with an application receipt (version 2; None for withdrawals recorded before
    it was tracked as a message)."""


class ReadinessWithdrawnV1(DischargeEvent):
    """Avmelding (version 1, as published before version 2; still delivered to vendor
    subscriptions that receive contract version 1 or 2): without the message id."""

    reason: Text
    """Why: clinical free text from the hospital."""

    @classmethod
    def event_type(cls) -> str:
        return "ReadinessWithdrawn"


class PatientDischarged(DischargeEvent):
    """The patient was discharged (utskrevet) from the stay, to a destination. The stay closes
    (admissions reacts with StayClosed)."""

    stay_id: Uuid
    """The hospital stay (admissions' aggregate id)."""
    destination: Destination
    """Where the patient goes."""
    destination_her_id: HerId | None
    """The receiving nursing home or hospital, for the destinations that name one."""
    schema_version: ClassVar[int] = 2

    report_message_id: Uuid | None
    """The *Utskrivningsrapport* sent to municipal care with the discharge, when the destination
    needs one."""
    notice_message_id: Uuid | None
    """The *Melding om utskrevet pasient* sent to the municipality that was notified of the
    patient (a readiness notice) or will care for them; answered with an application receipt
    (version 2; None when no municipality is told, or for discharges recorded before it)."""


class PatientDischargedV1(DischargeEvent):
    """The patient was discharged (version 1, as published before version 2; still delivered
    to vendor subscriptions that receive contract version 1 or 2): without the Melding om
    utskrevet pasient's message id."""

    stay_id: Uuid
    """The hospital stay (admissions' aggregate id)."""
    destination: Destination
    """Where the patient goes."""
    destination_her_id: HerId | None
    """The receiving nursing home or hospital, for the destinations that name one."""
    report_message_id: Uuid | None
    """The *Utskrivningsrapport* sent to municipal care with the discharge, when the destination
    needs one."""

    @classmethod
    def event_type(cls) -> str:
        return "PatientDischarged"


class EpicrisisSent(DischargeEvent):
    """The discharging hospital sent the *epikrise* to one recipient (the GP or the home
    municipality)."""

    message_id: Uuid
    """The message's id; its application receipt names it."""
    to_her_id: HerId
    """The recipient."""


class MessageReceiptRecorded(DischargeEvent):
    """The receiver of one of the discharge's messages recorded its application receipt
    (AppRec)."""

    message_id: Uuid
    """The message answered."""
    status: AppRecStatus
    """The receipt's status."""
    errors: AppRecErrors
    """The errors found (none for OK; at least one otherwise)."""


EVENTS: tuple[type[Payload], ...] = (
    PatientDeclaredReadyForDischarge,
    PatientDeclaredReadyForDischargeV1,
    MunicipalityAnsweredReadiness,
    ReadinessWithdrawn,
    ReadinessWithdrawnV1,
    PatientDischarged,
    PatientDischargedV1,
    EpicrisisSent,
    MessageReceiptRecorded,
)
