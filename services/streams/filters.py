"""What a subscription receives, decided without I/O: which events it wants (event types,
sources), which patients its served organisations may see (the access facts are gathered by
the delivery process and handed in), and the event as the subscription may have it
(minimised). The unit tests run these directly; the delivery process calls them per batch.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from services.streams.domain import (
    NotificationFormat,
    Organisation,
    Subscription,
    SubscriptionState,
)
from services.streams.purposes import PURPOSES, SubscriptionPurpose
from shared.access.model import Basis
from shared.events import CURRENT_CONTRACT, Envelope, downcast, schema_version_in
from shared.events.base import MAX_TEXT


def vendor_contract(version: int) -> str:
    """The name of a version of the vendor contract (the message below plus `position`,
    `subscription`, `omitted`, and each event type at its schema version in that version:
    shared.events.catalogue.CONTRACT_VERSIONS), as the message's `contract` and its
    `x-carepath-contract` header say it."""
    return f"carepath.vendor/{version}"


#: Events never delivered to a vendor: a patient's blocks (sperring) serve carepath's access
#: policy, and who is blocked is itself for no other system.
NEVER_DELIVERED = frozenset({("registry", "AccessBlocked"), ("registry", "AccessBlockLifted")})


def loggable(envelope: Envelope) -> bool:
    """The event belongs in carepath's stream log (services/streams/streamlog.py): every
    event a subscription could ever receive."""
    return (envelope.source, envelope.event_type) not in NEVER_DELIVERED


@dataclass(frozen=True, slots=True)
class Route:
    """A subscription as the delivery process uses it."""

    name: str
    queue: str
    vendor: Organisation
    purpose: SubscriptionPurpose
    event_types: frozenset[str]
    sources: frozenset[str]
    served: tuple[Organisation, ...]
    free_text: bool
    state: SubscriptionState
    #: The vendor contract version it receives.
    contract_version: int = CURRENT_CONTRACT
    #: The native envelope, or FHIR R5 notifications wrapping it.
    notification_format: NotificationFormat = NotificationFormat.NATIVE

    @classmethod
    def of(cls, s: Subscription) -> Route:
        return cls(
            name=s.name,
            queue=s.queue,
            vendor=s.vendor,
            purpose=s.purpose,
            event_types=frozenset(s.event_types),
            sources=frozenset(s.sources),
            served=s.served,
            free_text=s.free_text,
            state=s.state,
            contract_version=s.contract_version,
            notification_format=s.notification_format,
        )

    def wants(self, envelope: Envelope) -> bool:
        """The event is one of its types and sources (none named: all). A paused
        subscription still wants its events: they wait in its queue until it resumes."""
        if self.state is SubscriptionState.DELETED:
            return False
        if not loggable(envelope):
            return False
        if self.event_types and envelope.event_type not in self.event_types:
            return False
        return not self.sources or envelope.source in self.sources


#: Of the patients in a batch, those each organisation may see now and on what basis (from
#: shared.access.facts.FactStore.members: a care relationship, no block of the organisation).
Visible = Mapping[str, Mapping[str, Basis]]


def seen_by(
    route: Route, patient_key: str, visible: Visible, vendor_blocked: frozenset[str] = frozenset()
) -> tuple[Organisation, Basis] | None:
    """The first served organisation that may see the patient, with its basis; None: the
    event is not delivered to this subscription — nor when the patient has blocked the
    vendor's own organisation (`vendor_blocked`: the patients who have)."""
    if patient_key in vendor_blocked:
        return None
    for organisation in route.served:
        basis = visible.get(organisation.her_id, {}).get(patient_key)
        if basis is not None:
            return organisation, basis
    return None


# --- minimising --------------------------------------------------------------------------------


def _is_free_text(annotation: Any) -> bool:
    """A string bounded at MAX_TEXT (shared.events.base.Text and the AppRec description)."""
    for arg in typing.get_args(annotation) if _is_union(annotation) else (annotation,):
        if typing.get_origin(arg) is typing.Annotated and any(
            getattr(m, "max_length", None) == MAX_TEXT for m in arg.__metadata__
        ):
            return True
    return False


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds a list of (AppRec errors), if any."""
    for arg in typing.get_args(annotation) or (annotation,):
        inner = typing.get_args(arg)[0] if typing.get_origin(arg) is typing.Annotated else arg
        for item in typing.get_args(inner) if typing.get_origin(inner) is list else ():
            if isinstance(item, type) and issubclass(item, BaseModel):
                return item
    return None


@functools.cache
def free_text_paths(cls: type[BaseModel]) -> tuple[tuple[str, ...], ...]:
    """Where a payload class carries clinical free text: ("reason",), ("errors", "*",
    "description"). Found once per class (reading the type hints is most of what minimising
    an event would otherwise cost)."""
    return tuple(_free_text_paths(cls))


def _free_text_paths(cls: type[BaseModel]) -> Iterator[tuple[str, ...]]:
    hints = typing.get_type_hints(cls, include_extras=True)
    for name in cls.model_fields:
        annotation = hints[name]
        if _is_free_text(annotation):
            yield (name,)
            continue
        model = _model_of(annotation)
        if model is not None:
            for path in free_text_paths(model):
                yield (name, "*", *path)


def _omit(data: Any, path: tuple[str, ...]) -> bool:
    """Remove `path` from `data`; whether anything was there."""
    head, rest = path[0], path[1:]
    if head == "*":
        return any([_omit(item, rest) for item in data]) if isinstance(data, list) else False
    if not isinstance(data, dict) or head not in data:
        return False
    if not rest:
        present = data[head] is not None
        del data[head]
        return present
    return _omit(data[head], rest)


def minimised(envelope: Envelope, route: Route) -> tuple[dict[str, Any], list[str]]:
    """The public envelope as the subscription may have it, and what was left out: free text
    unless the subscription may have it, the patient's identifier and the health
    professional's HPR-number (in the actor and in the data) unless its purpose needs them."""
    rule = PURPOSES[route.purpose]
    message = envelope.as_dict()
    omitted: list[str] = []
    data = message["data"]
    if not route.free_text:
        for path in free_text_paths(type(envelope.data)):
            if _omit(data, path):
                omitted.append("data." + ".".join(path))
    if not rule.patient_identifier and message["patient"]:
        message["patient"] = {}
        omitted.append("patient")
    if not rule.health_personnel:
        if message["actor"].get("hpr"):
            message["actor"] = {k: v for k, v in message["actor"].items() if k != "hpr"}
            omitted.append("actor.hpr")
        for name in [n for n in data if "hpr" in n]:
            if data.pop(name) is not None:
                omitted.append(f"data.{name}")
    return message, omitted


def vendor_body(
    envelope: Envelope, route: Route, position: int
) -> tuple[dict[str, Any], list[str]]:
    """The message a subscription's queue gets: the minimised envelope, at the schema version
    of its event type in the subscription's contract version, with the event's stable position
    in carepath's stream, the subscription, the contract version and what was omitted."""
    message, omitted = minimised(envelope, route)
    version = schema_version_in(route.contract_version, envelope.source, envelope.event_type)
    message = downcast(message, version)
    return {
        **message,
        "position": position,
        "subscription": route.name,
        "contract": vendor_contract(route.contract_version),
        "omitted": omitted,
    }, omitted
