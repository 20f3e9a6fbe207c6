"""Events of the registry service (exchange `registry.events`): the register facts the
integration adapter brings in (Folkeregisteret's residence and temporary residence,
Fastlegeregisteret's fastlege), the organisation directory (Adresseregisteret) and the
patient's blocks (sperring)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import StringConstraints

from shared.events.base import Day, HerId, Hpr, Orgnr, Payload, Uuid

#: Longest organisation name in the directory (the registry API's and importer's bound).
MAX_ORGANISATION_NAME = 200
DirectoryKind = Literal["MUNICIPALITY", "GP", "HOSPITAL", "REGISTRY"]
OrganisationName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ORGANISATION_NAME)]


class RegistryEvent(Payload):
    """An event of the registry."""

    source: ClassVar[str] = "registry"


class ResidenceRecorded(RegistryEvent):
    """Folkeregisteret: the patient lives in a municipality from a day on (until the next
    residence)."""

    municipality_her_id: HerId
    """The municipality of residence."""
    valid_from: Day
    """The first day of the residence."""


class TemporaryResidenceRecorded(RegistryEvent):
    """Folkeregisteret: the patient stays in a municipality for a period (oppholdskommune,
    who pays for days ready for discharge)."""

    municipality_her_id: HerId
    """The municipality the patient stays in."""
    valid_from: Day
    """The first day of the stay."""
    valid_to: Day | None
    """The last day of the stay (None: open-ended)."""


class FastlegeAssigned(RegistryEvent):
    """Fastlegeregisteret: the patient's regular GP (fastlege) from a day on."""

    gp_her_id: HerId
    """The GP office."""
    gp_hpr: Hpr
    """The GP."""
    valid_from: Day
    """The first day on the GP's list."""
    valid_to: Day | None
    """The last day on the list (None: open-ended)."""


class OrganisationRegistered(RegistryEvent):
    """Adresseregisteret: an organisation entered the directory (no patient: the envelope's
    patient is {}).

    Version 2 added `orgnr`; a version 1 event reads as version 2 with `orgnr` null."""

    about_patient: ClassVar[bool] = False
    schema_version: ClassVar[int] = 2

    her_id: HerId
    """The organisation's HER-id."""
    kind: DirectoryKind
    """Its kind."""
    name: OrganisationName
    """Its name for people."""
    parent_her_id: HerId | None
    """The organisation it belongs to (a service of a municipality), if any."""
    orgnr: Orgnr | None
    """Its organisation number in Enhetsregisteret (HelseID names callers by it), if any; one
    organisation holds a number at a time."""


class OrganisationChanged(RegistryEvent):
    """Adresseregisteret: an organisation's entry changed (a new name, another parent, another
    organisation number).

    Version 2 added `orgnr`; a version 1 event reads as version 2 with `orgnr` null."""

    about_patient: ClassVar[bool] = False
    schema_version: ClassVar[int] = 2

    kind: DirectoryKind
    """Its kind."""
    name: OrganisationName
    """Its name for people."""
    parent_her_id: HerId | None
    """The organisation it belongs to, if any."""
    orgnr: Orgnr | None
    """Its organisation number in Enhetsregisteret, if any (null: it has none now)."""


class PatientDied(RegistryEvent):
    """The patient died (a register fact, recorded once): the event's occurred_at is the moment
    of death. Recorded by a doctor of a hospital with the patient's stay, of the municipality
    the patient lives or stays in, or by the register adapter (Folkeregisteret); the envelope's
    actor says which."""

    died_on: Day
    """The day of death (Europe/Oslo): the last day a readiness period can be paid for."""


class AccessBlocked(RegistryEvent):
    """The patient blocked (sperret) an organisation or a person from their data."""

    block_id: Uuid
    """The block; lifting it names it."""
    her_id: HerId | None
    """The organisation blocked (exactly one of her_id and hpr is set)."""
    hpr: Hpr | None
    """The person blocked."""


class AccessBlockLifted(RegistryEvent):
    """The patient lifted a block."""

    block_id: Uuid
    """The block lifted."""


EVENTS: tuple[type[Payload], ...] = (
    ResidenceRecorded,
    TemporaryResidenceRecorded,
    FastlegeAssigned,
    PatientDied,
    OrganisationRegistered,
    OrganisationChanged,
    AccessBlocked,
    AccessBlockLifted,
)
