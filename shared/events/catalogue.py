"""Every public event type of every service, by (source, event_type, schema_version)."""

from __future__ import annotations

from shared.events import admissions, discharges, medications, pathway, referrals, registry
from shared.events.base import Payload

#: The services that publish events, in catalogue order; each publishes on `<source>.events`.
SOURCES = ("referrals", "admissions", "discharges", "medications", "registry", "pathway")

#: Each service's payload classes, in the order of its catalogue.
BY_SOURCE: dict[str, tuple[type[Payload], ...]] = {
    "referrals": referrals.EVENTS,
    "admissions": admissions.EVENTS,
    "discharges": discharges.EVENTS,
    "medications": medications.EVENTS,
    "registry": registry.EVENTS,
    "pathway": pathway.EVENTS,
}

PAYLOADS: dict[tuple[str, str, int], type[Payload]] = {
    (source, cls.event_type(), cls.schema_version): cls
    for source, classes in BY_SOURCE.items()
    for cls in classes
}


def current_payload(source: str, event_type: str) -> type[Payload]:
    """The newest version's payload class of an event type (KeyError when there is none)."""
    versions = [cls for (s, t, _), cls in PAYLOADS.items() if (s, t) == (source, event_type)]
    if not versions:
        raise KeyError(f"{source} publishes no {event_type}")
    return max(versions, key=lambda cls: cls.schema_version)
