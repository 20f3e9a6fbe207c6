"""Snapshots of carepath aggregates: eventsourcing's `Snapshot`, with the aggregate's state
packed so that what JSON cannot tell apart survives the round trip (a tuple is not a list, a
set is not a list, an enum member, a frozen dataclass such as `Change`, a pydantic payload).

A snapshot goes to the store's snapshot table, never to the notification log: the relay never
sees it (shared.outbox reads the log). Which aggregates get one, and when, is decided in
shared.store (`CarepathApplication.snapshotted`, shared.limits.snapshot_interval).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Self, cast
from uuid import UUID

from eventsourcing.domain import Snapshot
from eventsourcing.utils import get_topic, resolve_topic
from pydantic import BaseModel

#: The key that marks a packed value (no aggregate state uses it as a dict key).
TAG = "__packed__"
_PLAIN = (str, int, float, bool, type(None), datetime, date, UUID, Decimal)


def pack(value: Any) -> Any:
    """`value` as JSON the store's transcoder can write (its datetimes, dates, UUIDs and
    decimals stay as they are: the transcoder has them)."""
    if isinstance(value, enum.Enum):  # before str: a StrEnum is a str
        return {TAG: "enum", "t": get_topic(type(value)), "v": value.value}
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, list):
        return [pack(v) for v in value]
    if isinstance(value, dict):
        if TAG in value:
            raise TypeError(f"a dict with the key {TAG!r} cannot be snapshotted")
        return {k: pack(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {TAG: "tuple", "v": [pack(v) for v in value]}
    if isinstance(value, set | frozenset):
        kind = "set" if isinstance(value, set) else "frozenset"
        return {TAG: kind, "v": [pack(v) for v in value]}
    if isinstance(value, MappingProxyType):
        return {TAG: "mappingproxy", "v": pack(dict(value))}
    if isinstance(value, BaseModel):
        return {TAG: "model", "t": get_topic(type(value)), "v": value.model_dump_json()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: pack(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {TAG: "dataclass", "t": get_topic(type(value)), "v": fields}
    raise TypeError(f"cannot snapshot a {type(value).__qualname__}")


def unpack(value: Any) -> Any:
    """The value `pack` was given."""
    if isinstance(value, list):
        return [unpack(v) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get(TAG)
    if kind is None:
        return {k: unpack(v) for k, v in value.items()}
    if kind == "tuple":
        return tuple(unpack(v) for v in value["v"])
    if kind == "set":
        return {unpack(v) for v in value["v"]}
    if kind == "frozenset":
        return frozenset(unpack(v) for v in value["v"])
    if kind == "mappingproxy":
        return MappingProxyType(unpack(value["v"]))
    cls = resolve_topic(value["t"])
    if kind == "enum":
        return cls(value["v"])
    if kind == "model":
        return cast(type[BaseModel], cls).model_validate_json(value["v"])
    if kind == "dataclass":
        return cls(**{k: unpack(v) for k, v in value["v"].items()})
    raise ValueError(f"unknown packed value {kind!r}")


@dataclass(frozen=True)
class CarepathSnapshot(Snapshot):
    """A carepath aggregate's state at one version (its state packed, see `pack`)."""

    @classmethod
    def take(cls, aggregate: Any) -> Self:
        taken = Snapshot.take(aggregate)
        return cls(
            originator_id=taken.originator_id,
            originator_version=taken.originator_version,
            timestamp=taken.timestamp,
            topic=taken.topic,
            state=pack(taken.state),
        )

    def mutate(self, _: None) -> Any:
        return Snapshot.mutate(dataclasses.replace(self, state=unpack(self.state)), None)
