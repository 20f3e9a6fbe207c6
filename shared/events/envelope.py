"""The envelope every published message carries (DESIGN §3), and the one check every consumer
makes before it acts: `parse(body, exchange, routing_key)`.

The envelope's fields are declared and bounded in `Header`; its `data` is the typed payload of
its event type and version (shared.events.<service>). A body that fails any check raises
`ContractError` with a precise reason (field path and rule, never the value: values can be
personal data), which the consumer puts on the dead-letter queue before it goes on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from shared.events.base import FIRST_DAY, LAST_DAY, Hpr, Payload, Uuid
from shared.events.catalogue import PAYLOADS, SOURCES
from shared.ids import DNR_SYSTEM, FNR_SYSTEM, HNR_SYSTEM, IdentifierError, parse_patient_identifier

P = TypeVar("P", bound=Payload)

#: A message body: its bytes, or its JSON already decoded.
Body = bytes | str | dict[str, Any]


class ContractError(ValueError):
    """A message that breaks the event contract; the reason says which field and rule."""


def _instant(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise ValueError("has no UTC offset")
    if not FIRST_DAY.year <= moment.year <= LAST_DAY.year:
        raise ValueError(f"must be in the years {FIRST_DAY.year}–{LAST_DAY.year}")
    return value


#: A moment with its UTC offset, in the years carepath accepts.
Timestamp = Annotated[
    str,
    StringConstraints(min_length=10, max_length=40),
    AfterValidator(_instant),
    Field(json_schema_extra={"format": "date-time"}),
]
#: Ids chosen by clients or derived from other ids: printable ASCII, bounded.
Reference = Annotated[
    str, StringConstraints(min_length=1, max_length=300, pattern=r"^[\x21-\x7e]+$")
]
#: An event's id: printable ASCII, at most 200 characters.
EventId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]

_STRICT = ConfigDict(frozen=True, strict=True, extra="forbid", use_attribute_docstrings=True)


class PatientRef(BaseModel):
    """The patient the event is about, as a FHIR identifier."""

    model_config = _STRICT

    system: Literal[FNR_SYSTEM, DNR_SYSTEM, HNR_SYSTEM]  # type: ignore[valid-type]
    """The national identifier system: fødselsnummer, D-number, or H/FH-number (OIDs)."""
    value: Annotated[str, StringConstraints(min_length=11, max_length=11)]
    """The 11-digit number, valid for its system (check digits)."""

    @model_validator(mode="after")
    def _valid_number(self) -> PatientRef:
        try:
            parse_patient_identifier(self.system, self.value)
        except IdentifierError as exc:
            raise ValueError(f"value {exc}") from None
        return self


class NoPatient(BaseModel):
    """{} for events about no patient (the organisation directory)."""

    model_config = _STRICT


class ActorRef(BaseModel):
    """Who acted, as the publishing service authenticated them (informative: consumers decide
    with the access policy and the registers, never with this)."""

    model_config = _STRICT

    her_id: Annotated[str, StringConstraints(pattern=r"^([1-9][0-9]{0,8})?$")]
    """The acting organisation's HER-id; empty for a citizen or the system itself."""
    org_kind: Literal["MUNICIPALITY", "GP", "HOSPITAL", "REGISTRY", "CITIZEN", "SYSTEM"]
    """The kind of actor."""
    hpr: Hpr | None = None
    """The acting health professional's HPR number, when a person acted for the
    organisation."""


class Header(BaseModel):
    """The envelope of every published event (the message body, JSON)."""

    model_config = _STRICT

    event_id: EventId
    """Stable id for deduplication: `<aggregate_id>:<aggregate_version>` for a domain event."""
    event_type: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Za-z]{1,99}$")]
    """The event type (past tense); also the routing key and the AMQP `type` property."""
    schema_version: Annotated[int, Field(ge=1, le=1000)]
    """The version of this event type's `data` schema."""
    source: Literal[SOURCES]  # type: ignore[valid-type]
    """The publishing service; the message must arrive on its exchange `<source>.events`."""
    aggregate_id: Uuid
    """The referral, stay, discharge, medication list or register record the event belongs
    to."""
    aggregate_version: Annotated[int, Field(ge=0, le=2**31 - 1)]
    """The event's position in its aggregate's history (1 for the first; 0 for derived
    announcements)."""
    patient: PatientRef | NoPatient
    """The patient the event is about ({} for none)."""
    occurred_at: Timestamp
    """Clinical time: when it happened, as reported (possibly late)."""
    recorded_at: Timestamp
    """When carepath stored it."""
    actor: ActorRef
    """Who acted."""
    correlation_id: Reference
    """Groups the events of one piece of work across services."""
    causation_id: Reference
    """The command (or event) that caused this event."""
    data: dict[str, Any]
    """The event type's payload (see the event's own schema)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A checked event: envelope fields plus its typed payload (`data`). The event type,
    version and source are the payload class's."""

    event_id: str
    aggregate_id: str
    aggregate_version: int
    patient: dict[str, str]
    occurred_at: str
    recorded_at: str
    actor: dict[str, str]
    correlation_id: str
    causation_id: str
    data: Payload
    #: Transport, not contract: the W3C trace context of the command that stored the event
    #: (from its metadata), sent as the AMQP header `traceparent`, never in the body.
    traceparent: str = field(default="", compare=False)

    @property
    def event_type(self) -> str:
        return self.data.event_type()

    @property
    def schema_version(self) -> int:
        return self.data.schema_version

    @property
    def source(self) -> str:
        return self.data.source

    def payload(self, cls: type[P]) -> P:
        """`data` as the payload class a consumer expects (raises ContractError otherwise)."""
        if not isinstance(self.data, cls):
            raise ContractError(f"{self.event_type} is not a {cls.__name__}")
        return self.data

    @property
    def is_about_a_patient(self) -> bool:
        """False for events about no patient (the registry's organisation directory)."""
        return bool(self.patient)

    @property
    def occurred(self) -> datetime:
        return datetime.fromisoformat(self.occurred_at)

    @property
    def recorded(self) -> datetime:
        return datetime.fromisoformat(self.recorded_at)

    @staticmethod
    def make_event_id(aggregate_id: str, version: int) -> str:
        """Stable across redelivery, relays and rebuilds: the aggregate id and version."""
        return f"{aggregate_id}:{version}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "source": self.source,
            "aggregate_id": self.aggregate_id,
            "aggregate_version": self.aggregate_version,
            "patient": self.patient,
            "occurred_at": self.occurred_at,
            "recorded_at": self.recorded_at,
            "actor": self.actor,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "data": self.data.model_dump(mode="json"),
        }

    def to_json(self) -> bytes:
        return json.dumps(self.as_dict(), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, body: bytes | str) -> Envelope:
        """A stored or received body, checked against the contract (upcast to the newest
        version first). Raises ContractError."""
        return validate(body)

    @classmethod
    def from_stored(cls, body: bytes | str) -> Envelope:
        """An envelope the projector stored after checking it (the read model's own copy):
        upcast and typed again, without checking the envelope's fields a second time — a
        re-fold reads a patient's whole history. Raises ContractError."""
        raw = upcast(json.loads(body))
        key = (raw["source"], raw["event_type"], raw["schema_version"])
        payload_class = PAYLOADS.get(key)
        if payload_class is None:
            raise ContractError(f"stored event {raw['event_id']} is of no known type {key}")
        try:
            data = payload_class.model_validate(raw["data"])
        except ValidationError as exc:
            raise ContractError(describe(exc, "data.")) from None
        fields = {name: raw[name] for name in cls.__dataclass_fields__ if name not in _NOT_STORED}
        return cls(**fields, data=data)


#: Envelope fields that are not read from a stored body: the payload, and the transport's.
_NOT_STORED = {"data", "traceparent"}


def _without_orgnr(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 1 of the directory's events had no organisation number: none then."""
    data = raw.get("data")
    if isinstance(data, dict):
        data = {**data, "orgnr": None}
    return {**raw, "schema_version": 2, "data": data}


def _renamed(data: Any, old: str, new: str) -> Any:
    """`data` with the field `old` named `new` (in its place; anything else as it was)."""
    if not isinstance(data, dict):
        return data
    return {(new if name == old else name): value for name, value in data.items()}


def _home_municipality_named(raw: dict[str, Any]) -> dict[str, Any]:
    """PatientAdmitted version 2 names the home municipality for what it is."""
    data = _renamed(raw.get("data"), "municipality_her_id", "home_municipality_her_id")
    return {**raw, "schema_version": 2, "data": data}


def _home_municipality_unnamed(raw: dict[str, Any]) -> dict[str, Any]:
    """PatientAdmitted version 2 → 1, for subscriptions that receive contract version 1."""
    data = _renamed(raw.get("data"), "home_municipality_her_id", "municipality_her_id")
    return {**raw, "schema_version": 1, "data": data}


def _with_field(field: str) -> Step:
    """Version 2 of a discharge event names the PLO message it sent (for its receipt):
    events of version 1 sent none that was tracked, so the field is None."""

    def step(raw: dict[str, Any]) -> dict[str, Any]:
        data = raw.get("data")
        if isinstance(data, dict):
            data = {**data, field: None}
        return {**raw, "schema_version": 2, "data": data}

    return step


def _without_field(field: str) -> Step:
    """Version 2 → 1 of a discharge event, for subscriptions that receive an earlier contract:
    without the message id version 1 never had."""

    def step(raw: dict[str, Any]) -> dict[str, Any]:
        data = raw.get("data")
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != field}
        return {**raw, "schema_version": 1, "data": data}

    return step


Step = Callable[[dict[str, Any]], dict[str, Any]]


#: Upcasts: (source, event_type, version) → the step that turns that version's raw envelope
#: into the next version's; consumers only ever see the newest shape.
def _readiness_content_unrecorded(raw: dict[str, Any]) -> dict[str, Any]:
    """PatientDeclaredReadyForDischarge version 1 carried no content: none recorded then."""
    data = raw.get("data")
    if isinstance(data, dict):
        data = {**data, **dict.fromkeys(READINESS_CONTENT)}
    return {**raw, "schema_version": 2, "data": data}


def _readiness_content_left_out(raw: dict[str, Any]) -> dict[str, Any]:
    """PatientDeclaredReadyForDischarge version 2 → 1, for subscriptions on contract versions
    1 and 2: the notice's content is clinical free text those versions never carried (as a
    subscription without free text never receives it), so the step takes nothing from what
    they had."""
    data = raw.get("data")
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in READINESS_CONTENT}
    return {**raw, "schema_version": 1, "data": data}


#: The readiness notice's content fields (PatientDeclaredReadyForDischarge version 2).
READINESS_CONTENT = ("status", "functional_level", "expected_course", "follow_up_needs")

UPCASTS: dict[tuple[str, str, int], Step] = {
    ("registry", "OrganisationRegistered", 1): _without_orgnr,
    ("registry", "OrganisationChanged", 1): _without_orgnr,
    ("admissions", "PatientAdmitted", 1): _home_municipality_named,
    ("discharges", "PatientDeclaredReadyForDischarge", 1): _readiness_content_unrecorded,
    ("discharges", "ReadinessWithdrawn", 1): _with_field("message_id"),
    ("discharges", "PatientDischarged", 1): _with_field("notice_message_id"),
}

#: Downcasts: (source, event_type, version) → the step that turns that version's raw
#: envelope into the previous version's, where no information is lost on the way (a renamed
#: field). Only the vendor delivery uses them, for a subscription that receives an earlier
#: contract version (shared.events.catalogue.CONTRACT_VERSIONS); carepath's own consumers
#: read the newest.
DOWNCASTS: dict[tuple[str, str, int], Step] = {
    ("admissions", "PatientAdmitted", 2): _home_municipality_unnamed,
    ("discharges", "PatientDeclaredReadyForDischarge", 2): _readiness_content_left_out,
    ("discharges", "ReadinessWithdrawn", 2): _without_field("message_id"),
    ("discharges", "PatientDischarged", 2): _without_field("notice_message_id"),
}


def upcast(raw: dict[str, Any]) -> dict[str, Any]:
    """Bring an older envelope to its event type's newest schema version."""
    while True:
        key = (raw.get("source"), raw.get("event_type"), raw.get("schema_version"))
        if not all(isinstance(part, str | int) for part in key):
            return raw  # not a known version of anything: the checks that follow say why
        step = UPCASTS.get(key)  # type: ignore[arg-type]
        if step is None:
            return raw
        raw = step(raw)


def downcast(raw: dict[str, Any], version: int) -> dict[str, Any]:
    """Bring a newest-version envelope back to `version` of its event type (ValueError when
    no downcast leads there)."""
    while raw["schema_version"] > version:
        step = DOWNCASTS.get((raw["source"], raw["event_type"], raw["schema_version"]))
        if step is None:
            raise ValueError(f"{raw['event_type']} version {raw['schema_version']} has no downcast")
        raw = step(raw)
    return raw


def describe(exc: ValidationError, prefix: str = "") -> str:
    """The failed rules as 'field.path: message', without the offending values."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:3]:
        location = ".".join(str(p) for p in error["loc"] if p not in _MODEL_TAGS)
        parts.append(f"{prefix}{location}: {error['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


#: Union member names pydantic puts in an error's location; not field names.
_MODEL_TAGS = {"PatientRef", "NoPatient"}


def validate(body: Body, exchange: str | None = None, routing_key: str | None = None) -> Envelope:
    """Check a message body against the contract and return the typed event.

    `body` is the message's bytes, or its JSON already decoded (nameko decodes it).
    `exchange` and `routing_key` are where it arrived: the envelope's source must be the
    exchange's service (`<source>.events`) and its event type the routing key; None for
    envelopes read back from a queue or store where they are not known."""
    if isinstance(body, bytes | str):
        try:
            raw = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ContractError(f"body is not JSON: {exc}") from None
    else:
        raw = body
    if not isinstance(raw, dict):
        raise ContractError("body is not a JSON object")
    raw = upcast(raw)
    try:
        header = Header.model_validate(raw)
    except ValidationError as exc:
        raise ContractError(describe(exc)) from None
    if exchange is not None and exchange != f"{header.source}.events":
        raise ContractError(
            f"source {header.source!r} does not publish on {exchange!r} "
            f"(its events come only from {header.source}.events)"
        )
    payload_class = PAYLOADS.get((header.source, header.event_type, header.schema_version))
    if payload_class is None:
        known = sorted(v for (s, t, v) in PAYLOADS if (s, t) == (header.source, header.event_type))
        if known:
            raise ContractError(
                f"unknown schema_version {header.schema_version} of {header.event_type} "
                f"(known: {', '.join(map(str, known))})"
            )
        raise ContractError(f"unknown event_type {header.event_type!r} from {header.source}")
    if routing_key is not None and routing_key != header.event_type:
        raise ContractError(
            f"event_type {header.event_type} was published with routing key {routing_key!r}"
        )
    if header.source != "pathway":
        expected = Envelope.make_event_id(header.aggregate_id, header.aggregate_version)
        if header.event_id != expected or header.aggregate_version < 1:
            raise ContractError(
                "event_id must be '<aggregate_id>:<aggregate_version>' (version ≥ 1)"
            )
    about_patient = isinstance(header.patient, PatientRef)
    if about_patient != payload_class.about_patient:
        raise ContractError(
            f"patient must be {'an identifier' if payload_class.about_patient else '{}'} "
            f"for {header.event_type}"
        )
    try:
        data = payload_class.model_validate(header.data)
    except ValidationError as exc:
        raise ContractError(describe(exc, "data.")) from None
    return Envelope(
        event_id=header.event_id,
        aggregate_id=header.aggregate_id,
        aggregate_version=header.aggregate_version,
        patient=header.patient.model_dump(),
        occurred_at=header.occurred_at,
        recorded_at=header.recorded_at,
        actor=header.actor.model_dump(exclude_none=True),
        correlation_id=header.correlation_id,
        causation_id=header.causation_id,
        data=data,
    )


def parse(body: Body, exchange: str, routing_key: str) -> Envelope:
    """The check every consumer makes before it acts: the body of a message that arrived on
    `exchange` with `routing_key`, as a typed event; raises ContractError with the reason
    (→ dead-letter)."""
    return validate(body, exchange, routing_key)
