"""The municipal service's domain events → the public contract (shared.events.municipal), one
mapping per published event type. The relay publishes only what is mapped here."""

from __future__ import annotations

from typing import Any

from shared.events import municipal as ev
from shared.events.base import Contract


def municipal_service_decided(e: Any) -> ev.MunicipalServiceDecided:
    return ev.MunicipalServiceDecided(
        kind=e.kind,
        municipality_her_id=e.municipality_her_id,
        starts_on=e.starts_on,
        institution_her_id=e.institution_her_id,
    )


def municipal_service_started(e: Any) -> ev.MunicipalServiceStarted:
    return ev.MunicipalServiceStarted()


def municipal_service_ended(e: Any) -> ev.MunicipalServiceEnded:
    return ev.MunicipalServiceEnded(reason=e.reason, started=e.started)


CONTRACT: Contract = {
    "MunicipalServiceDecided": municipal_service_decided,
    "MunicipalServiceStarted": municipal_service_started,
    "MunicipalServiceEnded": municipal_service_ended,
}
