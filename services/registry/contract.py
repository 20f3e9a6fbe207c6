"""The registry service's domain events → the public contract (shared.events.registry), one
mapping per published event type. The relay publishes only what is mapped here;
RegistrationStarted, AccessBlocksStarted and the organisation numbers' holders (OrgnrTaken,
OrgnrGiven, OrgnrReleased) are bookkeeping and stay inside."""

from __future__ import annotations

from typing import Any

from shared.events import registry as ev
from shared.events.base import Contract


def residence_recorded(e: Any) -> ev.ResidenceRecorded:
    return ev.ResidenceRecorded(municipality_her_id=e.municipality_her_id, valid_from=e.valid_from)


def temporary_residence_recorded(e: Any) -> ev.TemporaryResidenceRecorded:
    return ev.TemporaryResidenceRecorded(
        municipality_her_id=e.municipality_her_id, valid_from=e.valid_from, valid_to=e.valid_to
    )


def fastlege_assigned(e: Any) -> ev.FastlegeAssigned:
    return ev.FastlegeAssigned(
        gp_her_id=e.gp_her_id, gp_hpr=e.gp_hpr, valid_from=e.valid_from, valid_to=e.valid_to
    )


def organisation_registered(e: Any) -> ev.OrganisationRegistered:
    return ev.OrganisationRegistered(
        her_id=e.her_id,
        kind=e.kind,
        name=e.name,
        parent_her_id=e.parent_her_id,
        orgnr=e.orgnr,
    )


def organisation_changed(e: Any) -> ev.OrganisationChanged:
    return ev.OrganisationChanged(
        kind=e.kind,
        name=e.name,
        parent_her_id=e.parent_her_id,
        orgnr=e.orgnr,
    )


def patient_died(e: Any) -> ev.PatientDied:
    return ev.PatientDied(died_on=e.died_on)


def access_blocked(e: Any) -> ev.AccessBlocked:
    return ev.AccessBlocked(block_id=e.block_id, her_id=e.her_id, hpr=e.hpr)


def access_block_lifted(e: Any) -> ev.AccessBlockLifted:
    return ev.AccessBlockLifted(block_id=e.block_id)


CONTRACT: Contract = {
    "ResidenceRecorded": residence_recorded,
    "TemporaryResidenceRecorded": temporary_residence_recorded,
    "FastlegeAssigned": fastlege_assigned,
    "PatientDied": patient_died,
    "OrganisationRegistered": organisation_registered,
    "OrganisationChanged": organisation_changed,
    "AccessBlocked": access_blocked,
    "AccessBlockLifted": access_block_lifted,
}
