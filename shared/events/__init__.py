"""The public event contract (DESIGN §3), declared once: every event type each service
publishes, its payload fields with types, bounds and meaning, and its schema version
(`shared.events.<service>`), the envelope around it, and the check every consumer makes before
it acts (`parse`). `docs/events.md` and `docs/events/` are generated from here (`make docs`).

Consumers read `envelope.data` as the typed payload class of its event type, by attribute
(`match envelope.data: case referrals.ReferralSent() as sent: sent.receiver_her_id`).
"""

from shared.events.base import Contract, Payload
from shared.events.catalogue import (
    BY_SOURCE,
    CONTRACT_VERSIONS,
    CURRENT_CONTRACT,
    PAYLOADS,
    SOURCES,
    current_payload,
    schema_version_in,
)
from shared.events.envelope import (
    DOWNCASTS,
    UPCASTS,
    ContractError,
    Envelope,
    downcast,
    parse,
    validate,
)

__all__ = [
    "BY_SOURCE",
    "CONTRACT_VERSIONS",
    "CURRENT_CONTRACT",
    "DOWNCASTS",
    "PAYLOADS",
    "SOURCES",
    "UPCASTS",
    "Contract",
    "ContractError",
    "Envelope",
    "Payload",
    "current_payload",
    "downcast",
    "parse",
    "schema_version_in",
    "validate",
]
