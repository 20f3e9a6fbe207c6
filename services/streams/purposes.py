"""What a vendor subscription is for: a small coded list, each purpose with what it needs of
an event (the patient's identifier, the health professional's HPR-number) and where it comes
from. Data, not rules in code: the filter and the minimising read it (services/streams/filters.py).

A subscription never gets more than its purpose needs (dataminimering); the organisations it
serves must have a care relationship with the patient under the access policy, whatever the
purpose (docs/access.md). Free text is a separate, explicit choice of each subscription.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SubscriptionPurpose(enum.StrEnum):
    """Why a vendor's system receives the events (proto `SubscriptionPurpose` without its
    prefix)."""

    #: The record system of an organisation giving the patient care (a municipal EHR, a
    #: hospital's or GP's system) files the event in the patient's record.
    HEALTH_CARE = "HEALTH_CARE"
    #: A coordination tool of the served organisation (a municipality's coordinating unit,
    #: welfare technology follow-up) shows where the patient is and what waits on whom.
    CARE_COORDINATION = "CARE_COORDINATION"
    #: Capacity and logistics planning (short-term beds, home-care rounds): when and what,
    #: never who.
    SERVICE_PLANNING = "SERVICE_PLANNING"


@dataclass(frozen=True, slots=True)
class PurposeRule:
    means: str
    #: The envelope's `patient` (the national identifier) is delivered.
    patient_identifier: bool
    #: The acting health professional's HPR-number (`actor.hpr`) is delivered.
    health_personnel: bool
    #: The purpose recorded on each delivery's audit row (a shared.access.model.Purpose value;
    #: named, not imported: this module is pure, the domain reads it).
    audit_purpose: str
    source: str


PURPOSES: dict[SubscriptionPurpose, PurposeRule] = {
    SubscriptionPurpose.HEALTH_CARE: PurposeRule(
        means="the served organisation's record system files the event in the patient's record",
        patient_identifier=True,
        health_personnel=True,
        audit_purpose="HEALTH_CARE",
        source="helsepersonelloven § 39 and § 45 (documentation; information to co-operating "
        "personnel as the care needs), pasientjournalloven § 19",
    ),
    SubscriptionPurpose.CARE_COORDINATION: PurposeRule(
        means="the served organisation's coordination tool shows the patient's pathway",
        patient_identifier=True,
        health_personnel=False,
        audit_purpose="CARE_COORDINATION",
        source="helse- og omsorgstjenesteloven kap. 6 (co-operation between municipality and "
        "hospital), pasientjournalloven § 19; carepath documented default: no HPR-numbers",
    ),
    SubscriptionPurpose.SERVICE_PLANNING: PurposeRule(
        means="capacity and logistics planning without identifying the patient",
        patient_identifier=False,
        health_personnel=False,
        audit_purpose="SERVICE_PLANNING",
        source="personvernforordningen art. 5 nr. 1 bokstav c (dataminimering); carepath "
        "documented default",
    ),
}
