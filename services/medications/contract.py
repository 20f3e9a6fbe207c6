"""The medications service's domain events → the public contract (shared.events.medications),
one mapping per published event type. The relay publishes only what is mapped here."""

from __future__ import annotations

from typing import Any

from shared.events import medications as ev
from shared.events.base import Contract


def medication_list_started(e: Any) -> ev.MedicationListStarted:
    return ev.MedicationListStarted()


def medication_prescribed(e: Any) -> ev.MedicationPrescribed:
    return ev.MedicationPrescribed(
        entry_id=e.entry_id,
        medication=ev.Medication(atc_code=e.medication["atc_code"], name=e.medication["name"]),
        dose=e.dose,
        reason=e.reason,
        source_her_id=e.source_her_id,
        source_kind=e.source_kind,
    )


def medication_dose_changed(e: Any) -> ev.MedicationDoseChanged:
    return ev.MedicationDoseChanged(entry_id=e.entry_id, dose=e.dose, reason=e.reason)


def medication_paused(e: Any) -> ev.MedicationPaused:
    return ev.MedicationPaused(entry_id=e.entry_id, reason=e.reason)


def medication_resumed(e: Any) -> ev.MedicationResumed:
    return ev.MedicationResumed(entry_id=e.entry_id)


def medication_discontinued(e: Any) -> ev.MedicationDiscontinued:
    return ev.MedicationDiscontinued(entry_id=e.entry_id, reason=e.reason)


def medication_list_reconciled(e: Any) -> ev.MedicationListReconciled:
    return ev.MedicationListReconciled(sources=list(e.sources), note=e.note)


CONTRACT: Contract = {
    "MedicationListStarted": medication_list_started,
    "MedicationPrescribed": medication_prescribed,
    "MedicationDoseChanged": medication_dose_changed,
    "MedicationPaused": medication_paused,
    "MedicationResumed": medication_resumed,
    "MedicationDiscontinued": medication_discontinued,
    "MedicationListReconciled": medication_list_reconciled,
}
