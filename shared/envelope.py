"""The public event contract (DESIGN §3): one JSON envelope per published message.

Internal domain event classes are mapped to this contract here, at the relay, so vendors never
see library internals. `schema_version` lets consumers upcast old envelopes on read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

SCHEMA_VERSION = 1

#: Attributes of a stored domain event that belong to the envelope, not to `data`.
_NOT_DATA = {"meta", "timestamp", "originator_id", "originator_version", "originator_topic"}


class EnvelopeError(ValueError):
    """A message body that is not a valid envelope (goes to the dead-letter queue)."""


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Envelope:
    event_id: str
    event_type: str
    schema_version: int
    source: str
    aggregate_id: str
    aggregate_version: int
    patient: dict[str, str]
    occurred_at: str
    recorded_at: str
    actor: dict[str, str]
    correlation_id: str
    causation_id: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def is_about_a_patient(self) -> bool:
        """False for events about no patient (the registry's organisation directory)."""
        return bool(self.patient)

    @staticmethod
    def make_event_id(aggregate_id: str, version: int) -> str:
        """Stable across redelivery, relays and rebuilds: the aggregate id and version."""
        return f"{aggregate_id}:{version}"

    @classmethod
    def from_domain_event(cls, source: str, event: Any) -> Envelope:
        meta: dict[str, Any] = event.meta
        aggregate_id = str(event.originator_id)
        version = int(event.originator_version)
        data = {k: _json_safe(v) for k, v in vars(event).items() if k not in _NOT_DATA}
        return cls(
            event_id=cls.make_event_id(aggregate_id, version),
            event_type=type(event).__name__,
            schema_version=SCHEMA_VERSION,
            source=source,
            aggregate_id=aggregate_id,
            aggregate_version=version,
            patient=dict(meta["patient"]),
            occurred_at=meta["occurred_at"],
            recorded_at=event.timestamp.isoformat(),
            actor=dict(meta["actor"]),
            correlation_id=meta.get("correlation_id") or meta["command_id"],
            causation_id=meta["command_id"],
            data=data,
        )

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, body: bytes | str) -> Envelope:
        try:
            raw = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EnvelopeError(f"body is not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise EnvelopeError("body is not a JSON object")
        raw = upcast(raw)
        missing = [f for f in cls.__dataclass_fields__ if f not in raw]
        if missing:
            raise EnvelopeError(f"missing fields: {', '.join(sorted(missing))}")
        try:
            envelope = cls(**{f: raw[f] for f in cls.__dataclass_fields__})
            datetime.fromisoformat(envelope.occurred_at)
            datetime.fromisoformat(envelope.recorded_at)
        except (TypeError, ValueError) as exc:
            raise EnvelopeError(f"malformed field: {exc}") from exc
        if not isinstance(envelope.patient, dict) or (
            envelope.patient
            and not (envelope.patient.get("system") and envelope.patient.get("value"))
        ):
            raise EnvelopeError("patient must have system and value (or be {} for none)")
        return envelope

    @property
    def occurred(self) -> datetime:
        return datetime.fromisoformat(self.occurred_at)

    @property
    def recorded(self) -> datetime:
        return datetime.fromisoformat(self.recorded_at)


def upcast(raw: dict[str, Any]) -> dict[str, Any]:
    """Bring an older envelope to the current schema. Version 1 is the first; later schema
    changes add a step here so consumers only ever handle the newest shape."""
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise EnvelopeError(f"unknown schema_version {version!r}")
    return raw
