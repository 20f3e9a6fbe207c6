"""Events of the pathway service (exchange `pathway.events`): announcements derived from the
read model."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, StringConstraints

from shared.events.base import Payload, Text

#: Organisation kinds a task can wait on.
WaitingOnKind = Literal["MUNICIPALITY", "GP", "HOSPITAL"]
Time = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2})$"),
]


class WaitingOn(BaseModel):
    """The organisation a task waits on."""

    model_config = Payload.model_config

    her_id: Annotated[str, StringConstraints(pattern=r"^([1-9][0-9]{0,8})?$")]
    """Its HER-id."""
    kind: WaitingOnKind
    """Its kind."""


class DeadlineBreached(Payload):
    """A task of a patient's pathway passed its deadline without being done (announced once per
    task and due time; the envelope's aggregate_id is the referral, stay or discharge)."""

    source: ClassVar[str] = "pathway"

    task_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    """The task: its aggregate and kind (stable, for deduplication)."""
    kind: Annotated[str, StringConstraints(pattern=r"^[A-Z_]{1,64}$")]
    """What is waiting, e.g. REFERRAL_ASSESSMENT, MESSAGE_RECEIPT, READINESS_ANSWER."""
    description: Text
    """The task for people (Norwegian)."""
    waiting_on: WaitingOn
    """Who must act."""
    since: Time
    """When the wait began (UTC)."""
    due: Time
    """When it was due (UTC)."""


EVENTS: tuple[type[Payload], ...] = (DeadlineBreached,)
