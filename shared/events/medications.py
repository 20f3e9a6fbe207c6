"""Events of the medications service (exchange `medications.events`): the patient's shared
medication list (PLL-style), each change placed at its clinical time."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field, StringConstraints

from shared.events.base import HerId, OrgKind, Payload, Text, Uuid

#: Longest medication name and dose text (the medications API's bounds).
MAX_NAME = 200
MAX_DOSE = 500
ReconciliationSource = Literal[
    "PATIENT",
    "NEXT_OF_KIN",
    "GP_RECORD",
    "HOSPITAL_RECORD",
    "MUNICIPAL_CARE_RECORD",
    "PRESCRIPTION_INTERMEDIARY",
    "MULTIDOSE_PHARMACY",
]
Dose = Annotated[str, StringConstraints(min_length=1, max_length=MAX_DOSE)]


class Medication(BaseModel):
    """A medication at substance level."""

    model_config = Payload.model_config

    atc_code: Annotated[
        str, StringConstraints(pattern=r"^[ABCDGHJLMNPRSV][0-9]{2}[A-Z]{2}[0-9]{2}$")
    ]
    """The ATC code at substance level (WHO ATC/DDD index), like A10BA02."""
    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
    """The name the prescriber gave (substance or product)."""


class MedicationListEvent(Payload):
    """An event of one patient's medication list (aggregate_id: the list's id)."""

    source: ClassVar[str] = "medications"


class MedicationListStarted(MedicationListEvent):
    """The patient's shared medication list was opened (with its first change)."""


class MedicationPrescribed(MedicationListEvent):
    """A doctor added a medication to the list as ACTIVE."""

    entry_id: Uuid
    """The list entry; later changes name it."""
    medication: Medication
    """What was prescribed."""
    dose: Dose
    """The dosage as agreed with the patient (free text, e.g. "1 tablett morgen")."""
    reason: Text | None
    """Why it is prescribed (indication), if given."""
    source_her_id: HerId
    """The prescribing organisation (the entry's source)."""
    source_kind: OrgKind
    """Its kind: GP office, hospital or municipality (municipal doctors prescribe too)."""


class MedicationDoseChanged(MedicationListEvent):
    """A doctor changed the dose of an active or paused entry."""

    entry_id: Uuid
    """The entry changed."""
    dose: Dose
    """The new dosage."""
    reason: Text | None
    """Why, if given."""


class MedicationPaused(MedicationListEvent):
    """A doctor paused an active entry (FHIR on-hold)."""

    entry_id: Uuid
    """The entry paused."""
    reason: Text
    """Why it is paused."""


class MedicationResumed(MedicationListEvent):
    """A doctor resumed a paused entry."""

    entry_id: Uuid
    """The entry resumed."""


class MedicationDiscontinued(MedicationListEvent):
    """A doctor discontinued (seponerte) an entry."""

    entry_id: Uuid
    """The entry discontinued."""
    reason: Text
    """Why it was discontinued."""


class MedicationListReconciled(MedicationListEvent):
    """The list as a whole was reconciled (legemiddelsamstemming) against the sources
    consulted."""

    sources: Annotated[list[ReconciliationSource], Field(min_length=1, max_length=7)]
    """The sources consulted, each once."""
    note: Text | None
    """A note on the reconciliation, if given."""


EVENTS: tuple[type[Payload], ...] = (
    MedicationListStarted,
    MedicationPrescribed,
    MedicationDoseChanged,
    MedicationPaused,
    MedicationResumed,
    MedicationDiscontinued,
    MedicationListReconciled,
)
