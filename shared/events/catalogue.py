"""Every public event type of every service, by (source, event_type, schema_version)."""

from __future__ import annotations

from shared.events import (
    admissions,
    correspondence,
    discharges,
    medications,
    municipal,
    pathway,
    referrals,
    registry,
)
from shared.events.base import Payload

#: The services that publish events, in catalogue order; each publishes on `<source>.events`.
SOURCES = (
    "referrals",
    "admissions",
    "discharges",
    "medications",
    "registry",
    "municipal",
    "correspondence",
    "pathway",
)

#: Each service's payload classes, in the order of its catalogue.
BY_SOURCE: dict[str, tuple[type[Payload], ...]] = {
    "referrals": referrals.EVENTS,
    "admissions": admissions.EVENTS,
    "discharges": discharges.EVENTS,
    "medications": medications.EVENTS,
    "registry": registry.EVENTS,
    "municipal": municipal.EVENTS,
    "correspondence": correspondence.EVENTS,
    "pathway": pathway.EVENTS,
}

PAYLOADS: dict[tuple[str, str, int], type[Payload]] = {
    (source, cls.event_type(), cls.schema_version): cls
    for source, classes in BY_SOURCE.items()
    for cls in classes
}


#: The newest version's payload class of each event type, found once (the vendor stream asks
#: for every event it sends).
_NEWEST: dict[tuple[str, str], type[Payload]] = {}
for (_source, _type, _), _cls in PAYLOADS.items():
    _known = _NEWEST.get((_source, _type))
    if _known is None or _cls.schema_version > _known.schema_version:
        _NEWEST[(_source, _type)] = _cls


def current_payload(source: str, event_type: str) -> type[Payload]:
    """The newest version's payload class of an event type (KeyError when there is none)."""
    try:
        return _NEWEST[(source, event_type)]
    except KeyError:
        raise KeyError(f"{source} publishes no {event_type}") from None


#: The vendor contract's versions (what a vendor subscription states it receives): per version,
#: the schema version of each event type where it differs from the newest. Version 1 is the
#: contract as first published to vendors; version 2 has PatientAdmitted version 2
#: (`home_municipality_her_id`); version 3 has PatientDeclaredReadyForDischarge version 2 (the
#: readiness notice's content) and ReadinessWithdrawn and PatientDischarged version 2 (the
#: Avmelding and the Melding om utskrevet pasient as messages with receipts). The delivery
#: downcasts (shared.events.envelope.DOWNCASTS) for
#: a subscription on an earlier version; a new version is added here with its event type's
#: new schema version and the downcast back.
_DISCHARGE_MESSAGES_V1 = {
    ("discharges", "ReadinessWithdrawn"): 1,
    ("discharges", "PatientDischarged"): 1,
}
CONTRACT_VERSIONS: dict[int, dict[tuple[str, str], int]] = {
    1: {
        ("admissions", "PatientAdmitted"): 1,
        ("discharges", "PatientDeclaredReadyForDischarge"): 1,
        **_DISCHARGE_MESSAGES_V1,
    },
    2: {("discharges", "PatientDeclaredReadyForDischarge"): 1, **_DISCHARGE_MESSAGES_V1},
    3: {},
}
#: The version a new subscription receives unless it names another.
CURRENT_CONTRACT = max(CONTRACT_VERSIONS)


def schema_version_in(contract: int, source: str, event_type: str) -> int:
    """The schema version of an event type in a vendor contract version."""
    newest = current_payload(source, event_type).schema_version
    return CONTRACT_VERSIONS[contract].get((source, event_type), newest)
