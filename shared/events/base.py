"""What every event payload of the public contract shares: the base class and the field types
with their bounds. Pure declarations (pydantic v2), no I/O.

A payload class is one event type at one schema version: its name is the wire `event_type`,
its `source` the publishing service, its docstring says when it is published, and each field's
docstring says what it means clinically. The JSON Schema in `docs/events/` is generated from
these classes (`make docs`), so the declaration here is the only place the contract is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from stdnum.no import orgnr as stdnum_orgnr

#: Longest free text any field carries (the APIs bound their text fields at or below this).
MAX_TEXT = 10_000
#: Earliest and latest calendar day an event may name: clinical times outside are typos or
#: attacks (a year 9999 or a negative year), never care.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2199, 12, 31)

_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def _calendar_day(value: str) -> str:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError("is not a calendar day") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"must be between {FIRST_DAY} and {LAST_DAY}")
    return value


def _organisation_number(value: str) -> str:
    if not stdnum_orgnr.is_valid(value):
        raise ValueError("is not an organisation number (wrong check digit)")
    return value


#: An organisation's HER-id in Adresseregisteret: 1–9 digits, no leading zero.
HerId = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,8}$")]
#: An organisation number of Enhetsregisteret: 9 digits whose last is a mod-11 check digit
#: (as HelseID names organisations, `orgnr_parent`/`orgnr_child`).
Orgnr = Annotated[
    str, StringConstraints(pattern=r"^[0-9]{9}$"), AfterValidator(_organisation_number)
]
#: A health professional's number in Helsepersonellregisteret: 1–9 digits, no leading zero.
Hpr = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,8}$")]
#: A carepath id (referral, stay, discharge, message, entry, block): a lower-case UUID.
Uuid = Annotated[str, StringConstraints(pattern=_UUID)]
#: A calendar day, ISO 8601 (YYYY-MM-DD), in the years carepath accepts.
Day = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
    AfterValidator(_calendar_day),
    Field(json_schema_extra={"format": "date"}),
]


#: Free text: at least one character, at most MAX_TEXT.
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]
#: The organisation kinds that act on patients.
OrgKind = Literal["MUNICIPALITY", "GP", "HOSPITAL"]
#: The application receipt (AppRec) status of a message.
AppRecStatus = Literal["OK", "REJECTED", "OK_ERROR_IN_PART"]


class Payload(BaseModel):
    """Base of every event payload: immutable, strict (no type coercion: a number is not a
    string, a list is not a string), and closed (an unknown field is an error)."""

    model_config = ConfigDict(
        frozen=True, strict=True, extra="forbid", use_attribute_docstrings=True
    )

    #: The service that publishes it (its exchange is `<source>.events`).
    source: ClassVar[str]
    #: The version of this event type's payload; a change a consumer could trip on is a new
    #: version (with an upcast from the old one, shared.events.envelope.UPCASTS).
    schema_version: ClassVar[int] = 1
    #: False for events about no patient (their envelope's patient is {}).
    about_patient: ClassVar[bool] = True

    @classmethod
    def event_type(cls) -> str:
        """The wire name (`event_type`, the routing key): the class name, past tense."""
        return cls.__name__

    @classmethod
    def published_when(cls) -> str:
        """When the service publishes it: the class docstring's first paragraph."""
        return re.split(r"\n\s*\n", (cls.__doc__ or "").strip())[0].replace("\n", " ")


class AppRecError(BaseModel):
    """One error of an application receipt (AppRec)."""

    model_config = Payload.model_config

    code: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    """The error code from the AppRec standard's code list (e.g. the message was unreadable)."""
    description: Annotated[str, StringConstraints(max_length=MAX_TEXT)]
    """The receiver's explanation for people; may be empty."""


#: At most this many errors in one application receipt.
MAX_APPREC_ERRORS = 100

AppRecErrors = Annotated[list[AppRecError], Field(max_length=MAX_APPREC_ERRORS)]


#: A service's mapping of its domain events to the contract: domain event class name → the
#: function that makes the event's payload (services/<service>/contract.py). The relay
#: publishes only what is mapped; an unmapped event is an error, never published as-is.
Contract = Mapping[str, Callable[[Any], Payload]]
