"""Events of the municipal service (exchange `municipal.events`): the municipality's decision
(vedtak) on a health and care service for a patient, its start and its end."""

from __future__ import annotations

from typing import ClassVar, Literal

from shared.events.base import Day, HerId, Payload

#: The kinds of municipal service (helse- og omsorgstjenesteloven § 3-2): home nursing
#: (hjemmesykepleie), practical assistance (praktisk bistand), a short-term or long-term place in
#: an institution (korttids-/langtidsopphold), rehabilitation in an institution, day activity
#: (dagtilbud).
ServiceKind = Literal[
    "HOME_NURSING",
    "PRACTICAL_ASSISTANCE",
    "SHORT_TERM_STAY",
    "LONG_TERM_STAY",
    "REHABILITATION",
    "DAY_ACTIVITY",
]
#: Why a service ended.
EndReason = Literal["NO_LONGER_NEEDED", "REPLACED", "PATIENT_DECLINED", "MOVED", "PATIENT_DIED"]


class MunicipalServiceEvent(Payload):
    """An event of one municipal service of one patient (aggregate_id: the service's id)."""

    source: ClassVar[str] = "municipal"


class MunicipalServiceDecided(MunicipalServiceEvent):
    """The municipality the patient lives or stays in decided a service for the patient
    (vedtak), to start on a day."""

    kind: ServiceKind
    """What service."""
    municipality_her_id: HerId
    """The deciding municipality (the caller; the registers made it the patient's)."""
    starts_on: Day
    """The day the service is to start (Europe/Oslo)."""
    institution_her_id: HerId | None
    """The institution of a place in one (short-term, long-term, rehabilitation); None for the
    services at home."""


class MunicipalServiceStarted(MunicipalServiceEvent):
    """The decided service started (the first visit, the arrival at the institution); the
    event's occurred_at is when."""


class MunicipalServiceEnded(MunicipalServiceEvent):
    """The service ended (or its decision was withdrawn before it started)."""

    reason: EndReason
    """Why it ended."""
    started: bool
    """Whether it had started (False: the decision was withdrawn before the start)."""


EVENTS: tuple[type[Payload], ...] = (
    MunicipalServiceDecided,
    MunicipalServiceStarted,
    MunicipalServiceEnded,
)
