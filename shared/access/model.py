"""The vocabulary of need-to-know: the grounds of access (bases), the coded purposes, a care
relationship with its time bounds, and the tables the access facts are kept in.

The facts tables live in the pathway read model (its projector folds every service's events,
the registry's included, into them; `services/pathway/relations.py`), so a municipality's
worklist can be joined with them. Every service reads them through `shared.access.facts`.
"""

from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

import sqlalchemy as sa

from shared.rules import RULES_FILE


class Basis(enum.StrEnum):
    """What gives a caller access (proto `AccessBasis` without its prefix)."""

    FASTLEGE = "FASTLEGE"
    REFERRAL_SENDER = "REFERRAL_SENDER"
    RESIDENCE_MUNICIPALITY = "RESIDENCE_MUNICIPALITY"
    TEMPORARY_RESIDENCE_MUNICIPALITY = "TEMPORARY_RESIDENCE_MUNICIPALITY"
    MESSAGE_RECEIVER = "MESSAGE_RECEIVER"
    REFERRAL_RECEIVER = "REFERRAL_RECEIVER"
    STAY_HOSPITAL = "STAY_HOSPITAL"
    ADMITTING_HOSPITAL = "ADMITTING_HOSPITAL"
    RECEIPT_DUE = "RECEIPT_DUE"
    SELF = "SELF"
    EMERGENCY = "EMERGENCY"
    REGISTER_KEEPER = "REGISTER_KEEPER"
    ORGANISATION_DIRECTORY = "ORGANISATION_DIRECTORY"
    SUPERVISOR = "SUPERVISOR"
    OWN_ORGANISATION = "OWN_ORGANISATION"
    OPERATOR = "OPERATOR"


#: Bases that are care relationships: facts about one organisation and one patient, with time
#: bounds (rules.toml [access.relationships]). The others are grounds the policy checks itself.
RELATIONSHIPS = frozenset(
    {
        Basis.FASTLEGE,
        Basis.REFERRAL_SENDER,
        Basis.RESIDENCE_MUNICIPALITY,
        Basis.TEMPORARY_RESIDENCE_MUNICIPALITY,
        Basis.MESSAGE_RECEIVER,
        Basis.REFERRAL_RECEIVER,
        Basis.STAY_HOSPITAL,
        Basis.RECEIPT_DUE,
    }
)
#: The relationships that put a patient on a municipality's worklist.
MUNICIPALITY_MEMBERSHIP = (
    Basis.RESIDENCE_MUNICIPALITY,
    Basis.TEMPORARY_RESIDENCE_MUNICIPALITY,
    Basis.MESSAGE_RECEIVER,
)


class Purpose(enum.StrEnum):
    """Why data is touched (proto `AccessPurpose` without its prefix)."""

    HEALTH_CARE = "HEALTH_CARE"
    CARE_COORDINATION = "CARE_COORDINATION"
    EMERGENCY_CARE = "EMERGENCY_CARE"
    CITIZEN_INSIGHT = "CITIZEN_INSIGHT"
    REGISTER_MAINTENANCE = "REGISTER_MAINTENANCE"
    ACCESS_REVIEW = "ACCESS_REVIEW"
    ACCESS_MANAGEMENT = "ACCESS_MANAGEMENT"
    #: A vendor subscription for capacity and logistics planning (services/streams): events
    #: without the patient's identifier.
    SERVICE_PLANNING = "SERVICE_PLANNING"
    #: Managing and improving the services from aggregated, suppressed numbers
    #: (PathwayService/Statistics): no one is named.
    STATISTICS = "STATISTICS"
    #: A hospital following up its own quality figures (counts, no patient named).
    QUALITY_IMPROVEMENT = "QUALITY_IMPROVEMENT"


class EmergencyReason(enum.StrEnum):
    """The coded reason for akuttilgang (proto `EmergencyReason` without its prefix)."""

    LIFE_THREATENING = "LIFE_THREATENING"
    PATIENT_CANNOT_CONSENT = "PATIENT_CANNOT_CONSENT"
    URGENT_CARE_WITHOUT_RELATIONSHIP = "URGENT_CARE_WITHOUT_RELATIONSHIP"


@dataclass(frozen=True, slots=True)
class Relationship:
    """A care relationship of one organisation with one patient: valid from `valid_from`
    until (not including) `valid_to`, stored times (shared.times); no end while it runs.
    `hpr` names the person where the register does (the fastlege)."""

    her_id: str
    basis: Basis
    valid_from: str
    valid_to: str | None = None
    hpr: str | None = None

    def holds_at(self, now: str) -> bool:
        return self.valid_from <= now and (self.valid_to is None or now < self.valid_to)

    @classmethod
    def party(cls, her_id: str, basis: Basis, until: str | None = None) -> Relationship:
        """A party of a resource itself (the sender of this referral, the hospital of this
        stay): it holds from the start, until `until` (None: for good)."""
        return cls(her_id, basis, "", until)


@cache
def access_rules() -> dict[str, Any]:
    """The `[access]` section of rules.toml."""
    with RULES_FILE.open("rb") as f:
        return dict(tomllib.load(f)["access"])


def grace_after_end(basis: Basis) -> timedelta:
    """How long a relationship still counts after its end (rules.toml, with its source)."""
    return timedelta(days=int(access_rules()["relationships"][basis.value]["days_after_end"]))


def emergency_duration() -> timedelta:
    return timedelta(hours=int(access_rules()["emergency"]["hours"]))


def system_roles() -> frozenset[str]:
    """Token roles of systems allowed to read patient data without a person (HPR)."""
    return frozenset(access_rules()["system_roles"])


SUPERVISOR_ROLE = "SUPERVISOR"
#: carepath's own operators: they manage the vendors' event subscriptions (services/streams).
OPERATOR_ROLE = "OPERATOR"

metadata = sa.MetaData()

relationships = sa.Table(
    "access_relationships",
    metadata,
    sa.Column("patient_key", sa.String(120), nullable=False),
    sa.Column("her_id", sa.String(20), nullable=False),
    sa.Column("basis", sa.String(40), nullable=False),
    sa.Column("hpr", sa.String(20), nullable=True),
    sa.Column("valid_from", sa.String(32), nullable=False),
    sa.Column("valid_to", sa.String(32), nullable=True),
    # The referral, stay, discharge or registration that gives it.
    sa.Column("source_id", sa.String(64), nullable=False),
    sa.Index("ix_access_relationships_patient", "patient_key", "her_id"),
    sa.Index("ix_access_relationships_member", "her_id", "basis"),
)

blocks = sa.Table(
    "access_blocks",
    metadata,
    sa.Column("patient_key", sa.String(120), primary_key=True),
    sa.Column("block_id", sa.String(64), primary_key=True),
    sa.Column("her_id", sa.String(20), nullable=True),
    sa.Column("hpr", sa.String(20), nullable=True),
    sa.Column("blocked_at", sa.String(32), nullable=False),
)

#: The projector's record of the events it has folded (services/pathway/readmodel.py, table
#: `pathway_events`): a consumer that decides on the facts an event itself creates (the vendor
#: delivery) waits until the event is there. Read only, never created from here.
applied_events = sa.table("pathway_events", sa.column("event_id"))

#: The registers' death of a patient as the projector keeps it (services/pathway/readmodel.py,
#: table `pathway_patients`): a service refuses to start care for a patient who has died. Read
#: only, never created from here.
deaths = sa.table("pathway_patients", sa.column("patient_key"), sa.column("died_at"))

organisations = sa.Table(
    "registry_organisations",
    metadata,
    sa.Column("her_id", sa.String(20), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("parent_her_id", sa.String(20), nullable=True),
    # Enhetsregisteret's number (HelseID names callers by it; shared.auth maps it to her_id).
    sa.Column("orgnr", sa.String(9), nullable=True),
)
