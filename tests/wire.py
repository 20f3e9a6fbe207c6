"""Messages as they travel on the broker, for the contract's tests: a good one of each kind,
and each class of malformation a consumer must dead-letter (with the words its reason says)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pika
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.pathway import readmodel
from services.pathway.projector import Projector
from shared.amqp import DEAD_LETTER_QUEUE, declare_dead_letter
from shared.broker import Tenant
from shared.events import Envelope, Payload
from shared.events.admissions import PatientAdmitted
from shared.events.discharges import PatientDischarged
from shared.ids import FNR_SYSTEM
from tests.support import (
    drain_queue,
    make_fnr,
    not_a_number,
    projector_queue,
    run_projector,
    wait_for,
)

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(17, 5, 52, 331)}
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOSPITAL_ACTOR = {"her_id": "59", "org_kind": "HOSPITAL", "hpr": "4210953"}


def envelope(
    data: Payload,
    *,
    version: int = 1,
    aggregate_id: str | None = None,
    patient: dict[str, str] | None = None,
    actor: dict[str, str] | None = None,
    occurred_at: datetime = NOW,
) -> Envelope:
    """A well-formed event carrying `data` (a fresh aggregate unless one is named)."""
    aggregate_id = aggregate_id or str(uuid.uuid4())
    return Envelope(
        event_id=Envelope.make_event_id(aggregate_id, version),
        aggregate_id=aggregate_id,
        aggregate_version=version,
        patient=PATIENT if patient is None else patient,
        occurred_at=occurred_at.isoformat(),
        recorded_at=occurred_at.isoformat(),
        actor=actor or HOSPITAL_ACTOR,
        correlation_id="corr",
        causation_id=f"cmd-{uuid.uuid4()}",
        data=data,
    )


def admitted(ward: str = "Medisinsk post 3") -> PatientAdmitted:
    return PatientAdmitted(
        hospital_her_id="59",
        ward=ward,
        admission_type="ACUTE",
        referral_id=None,
        home_municipality_her_id="4201",
        municipal_services_likely=True,
        existing_service_user=False,
    )


def discharged(stay_id: str | None = None) -> PatientDischarged:
    return PatientDischarged(
        stay_id=stay_id or str(uuid.uuid4()),
        destination="HOME",
        destination_her_id=None,
        report_message_id=None,
        notice_message_id=None,
    )


@dataclass(frozen=True)
class Malformation:
    """One class of broken message: how to break a good PatientAdmitted (sent to
    admissions.events), and words the dead-letter reason must contain."""

    name: str
    breaks: Callable[[dict[str, Any]], None]
    reason: str


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def breaks(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = raw
        for p in parents:
            target = target[p]
        target[last] = value

    return breaks


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def breaks(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = raw
        for p in parents:
            target = target[p]
        del target[last]

    return breaks


MALFORMATIONS = [
    Malformation("missing field", _drop("data.ward"), "data.ward: Field required"),
    Malformation("missing envelope field", _drop("occurred_at"), "occurred_at: Field required"),
    Malformation(
        "wrong-typed field",
        _set("data.ward", ["Medisinsk"]),
        "data.ward: Input should be a valid string",
    ),
    Malformation("number for a string", _set("data.hospital_her_id", 59), "data.hospital_her_id"),
    Malformation("huge version", _set("aggregate_version", 2**70), "aggregate_version"),
    Malformation("negative version", _set("aggregate_version", -1), "aggregate_version"),
    Malformation("year 9999", _set("occurred_at", "9999-01-01T00:00:00+00:00"), "occurred_at"),
    Malformation("negative year", _set("recorded_at", "-0001-01-01T00:00:00+00:00"), "recorded_at"),
    Malformation("unknown type", _set("event_type", "PatientTeleported"), "unknown event_type"),
    Malformation("unknown version", _set("schema_version", 3), "unknown schema_version 3"),
    Malformation("empty data", _set("data", {}), "data.hospital_her_id: Field required"),
    Malformation(
        "oversized string",
        _set("data.ward", "x" * 1_000_000),
        "data.ward: String should have at most 200",
    ),
    Malformation("unknown field", _set("data.note", "hei"), "data.note: Extra inputs"),
    Malformation(
        "bad patient number", _set("patient.value", not_a_number(17, 5, 52, 331)), "patient"
    ),
    Malformation(
        "type not its routing key",
        lambda raw: raw.update(event_type="StayClosed", schema_version=1),
        "event_type StayClosed was published with routing key 'PatientAdmitted'",
    ),
    Malformation(
        "wrong source",
        _set("source", "discharges"),
        "source 'discharges' does not publish on 'admissions.events'",
    ),
]


def malformed(m: Malformation) -> bytes:
    """A PatientAdmitted broken as `m` says."""
    raw = json.loads(envelope(admitted()).to_json())
    m.breaks(raw)
    return json.dumps(raw).encode()


# --- the consumers on the broker ------------------------------------------------------------


def publish(
    broker: Tenant,
    service: str,
    messages: list[tuple[str, bytes]],
    headers: dict[str, str] | None = None,
) -> None:
    """Publish raw bodies (routing key, body) to `<service>.events`, confirmed, as the service's
    own broker user (its `user_id`), with `headers` if given: what a bug in that service, or
    someone holding its credentials, could publish."""
    conn = pika.BlockingConnection(pika.URLParameters(broker.uri(service)))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for routing_key, body in messages:
            ch.basic_publish(
                f"{service}.events",
                routing_key,
                body,
                pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=2,
                    user_id=broker.user(service),
                    headers=headers,
                ),
            )
    finally:
        conn.close()


def empty_dead_letters(uri: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(uri))
    declare_dead_letter(conn.channel())
    conn.close()
    drain_queue(uri, DEAD_LETTER_QUEUE, delete=False)


def dead_letters(uri: str) -> list[tuple[str, bytes]]:
    """(reason, body) of every message parked on carepath.dead-letter, taking them off."""
    conn = pika.BlockingConnection(pika.URLParameters(uri))
    ch = conn.channel()
    found = []
    while True:
        method, props, body = ch.basic_get(DEAD_LETTER_QUEUE, auto_ack=True)
        if method is None:
            break
        found.append((str((props.headers or {}).get("x-carepath-reason", "")), body))
    conn.close()
    return found


def stored(engine: Engine, event_ids: list[str]) -> set[str]:
    """Which of these events the projector has stored."""
    events = readmodel.events
    with engine.connect() as conn:
        query = sa.select(events.c.event_id).where(events.c.event_id.in_(event_ids))
        return set(conn.execute(query).scalars())


@contextmanager
def projecting(engine: Engine, broker: Tenant, amqp_uri: str) -> Iterator[Projector]:
    """A projector, as the pathway's broker user, on its own copy of the projector's queue,
    consuming until the block ends."""
    queue = projector_queue("contract")
    consumer, stop = run_projector(engine, broker, queue)
    try:
        wait_for(consumer.ready.is_set, what="the projector's queue")
        yield consumer
    finally:
        stop.set()
        drain_queue(amqp_uri, queue)


# --- any message at all (hypothesis) ------------------------------------------------------------

#: Where a mutation may strike a PatientAdmitted: every envelope field, every field of the
#: patient, the actor and the data.
PATHS = [
    *Envelope.__dataclass_fields__,
    "event_type",
    "schema_version",
    "source",
    "patient.system",
    "patient.value",
    "actor.her_id",
    "actor.org_kind",
    "actor.hpr",
    *(f"data.{name}" for name in PatientAdmitted.model_fields),
]
DROP = object()


def apply_mutations(raw: dict[str, Any], mutations: list[tuple[str, Any]]) -> None:
    """Replace (or drop) each path's value, where the path still leads to an object."""
    for path, value in mutations:
        *parents, last = path.split(".")
        target: Any = raw
        for p in parents:
            target = target.get(p) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if value is DROP:
            target.pop(last, None)
        else:
            target[last] = value


def any_message(mutations: list[tuple[str, Any]]) -> tuple[bytes, str]:
    """A fresh PatientAdmitted with the mutations applied: its body and its (original)
    event_id (an empty list of mutations leaves it well-formed)."""
    good = envelope(admitted())
    raw = json.loads(good.to_json())
    apply_mutations(raw, mutations)
    return json.dumps(raw).encode(), good.event_id
