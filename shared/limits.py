"""Bounds on every request, checked the same way by every service before the request reaches
the access policy or the application (called by `shared.grpc_server`'s interceptor): the length
of each string and the number of entries of each repeated field, as data in limits.toml; and
every `google.protobuf.Timestamp` within the range a time can have (1900 to the year 9999,
nanos 0–999 999 999).

A refusal is INVALID_ARGUMENT naming the field by its path in the request
(`receipt.errors[2].description`) and the bound; nothing has been stored then.

Also here: how often a consumer tries a message before it dead-letters it
(`redelivery_attempts`, [redelivery] in limits.toml), and every how many events a growing
aggregate gets a snapshot (`snapshot_interval`, [snapshots]).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from shared.errors import InvalidArgument

LIMITS_FILE = Path(__file__).with_name("limits.toml")

#: The range of a time in a request: 1900-01-01T00:00:00Z up to 9999-12-31T23:59:59Z.
EARLIEST_SECONDS = -2_208_988_800
LATEST_SECONDS = 253_402_300_799
TIMESTAMP = "google.protobuf.Timestamp"


@dataclass(frozen=True)
class Limits:
    default_length: int
    default_items: int
    lengths: dict[str, int]
    items: dict[str, int]

    def max_length(self, field: FieldDescriptor) -> int:
        return self.lengths.get(field.full_name, self.default_length)

    def max_items(self, field: FieldDescriptor) -> int:
        return self.items.get(field.full_name, self.default_items)


@cache
def limits() -> Limits:
    with LIMITS_FILE.open("rb") as f:
        data = tomllib.load(f)
    return Limits(
        default_length=int(data["defaults"]["max_length"]),
        default_items=int(data["defaults"]["max_items"]),
        lengths={k: int(v) for k, v in data["max_length"].items()},
        items={k: int(v) for k, v in data["max_items"].items()},
    )


def redelivery_attempts() -> int:
    """How often a consumer tries a message that failed for a reason that may pass before it
    dead-letters it ([redelivery] in limits.toml; CAREPATH_REDELIVERY_ATTEMPTS overrides)."""
    configured = os.environ.get("CAREPATH_REDELIVERY_ATTEMPTS")
    if configured:
        return max(1, int(configured))
    with LIMITS_FILE.open("rb") as f:
        return max(1, int(tomllib.load(f)["redelivery"]["attempts"]))


def snapshot_interval() -> int:
    """Every how many events a snapshotted aggregate gets a snapshot ([snapshots] in limits.toml;
    CAREPATH_SNAPSHOT_INTERVAL overrides)."""
    configured = os.environ.get("CAREPATH_SNAPSHOT_INTERVAL")
    if configured:
        return max(1, int(configured))
    with LIMITS_FILE.open("rb") as f:
        return max(1, int(tomllib.load(f)["snapshots"]["interval"]))


def check(request: Message, prefix: str = "") -> None:
    """Refuse a request with a field beyond its bound (InvalidArgument naming it)."""
    bounds = limits()
    for field, value in request.ListFields():
        path = prefix + field.name
        if field.is_repeated:
            most = bounds.max_items(field)
            if len(value) > most:
                raise InvalidArgument(path, f"must have at most {most} entries (has {len(value)})")
            for i, item in enumerate(value):
                _check_value(bounds, field, item, f"{path}[{i}]")
        else:
            _check_value(bounds, field, value, path)


def _check_value(bounds: Limits, field: FieldDescriptor, value: Any, path: str) -> None:
    if field.type == FieldDescriptor.TYPE_STRING:
        most = bounds.max_length(field)
        if len(value) > most:
            raise InvalidArgument(path, f"must be at most {most} characters (has {len(value)})")
    elif field.type == FieldDescriptor.TYPE_BYTES:
        most = bounds.max_length(field)
        if len(value) > most:
            raise InvalidArgument(path, f"must be at most {most} bytes (has {len(value)})")
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        if value.DESCRIPTOR.full_name == TIMESTAMP:
            check_timestamp(value, path)
        else:
            check(value, path + ".")


def check_timestamp(value: Any, path: str) -> None:
    """A time a datetime can hold, from 1900 on (a request's times are clinical or recent)."""
    if not 0 <= value.nanos <= 999_999_999:
        raise InvalidArgument(path, "is not a valid time: nanos must be 0 to 999 999 999")
    if not EARLIEST_SECONDS <= value.seconds <= LATEST_SECONDS:
        raise InvalidArgument(
            path, "is not a valid time: it must lie between 1900-01-01 and 9999-12-31 (UTC)"
        )
