"""FHIR R5 notifications: a subscription that chose `FHIR_R5` receives each event as FHIR's
topic-based subscriptions deliver them, instead of carepath's native envelope.

Every message is a Bundle of type `subscription-notification` whose first entry is a
`SubscriptionStatus` (FHIR R5, `fhir.resources`' default models):

- `type`: `event-notification` (an event), `heartbeat` (a quiet gRPC stream) or `handshake`
  (a gRPC stream has opened);
- `status`: the subscription's state when the notification was made (`active`, or `off`
  while paused: a paused subscription's queue keeps filling);
- `subscription`: `Subscription/<name>`; `topic`: carepath's one topic, every event of the
  public contract (`TOPIC`), narrowed by the subscription's filters;
- `notificationEvent[0].eventNumber`: the event's position in carepath's stream — the same
  number as the native message's `position`, stable for good; `timestamp`: when carepath
  recorded it; `focus`: a reference to the Bundle's second entry, a `Binary`
  (`application/json`) holding the subscription's native message byte for byte, minimised
  and filtered exactly as the native envelope is (the one decision is
  services/streams/selection.py's; this module only wraps its result);
- `eventsSinceSubscriptionStart`: the newest event number the notification accounts for (an
  event's own; the stream's position for a heartbeat or handshake). R5 counts the
  subscription's own events 1, 2, 3, …; carepath numbers its whole stream, so a
  subscription's numbers increase with gaps (the events it does not receive), and a reader
  resumes after the last number it has — R5's `$events` recovery is the gRPC stream's
  `from_position` (docs/fhir.md, "Notifications").

R5 writes `integer64` elements (`eventNumber`, `eventsSinceSubscriptionStart`) as JSON
strings; `fhir.resources` 8.3.0 writes them as numbers, so `_json` turns them into strings
after validation (the library reads both back).

Pure: no I/O, no gRPC, no broker.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

from fhir.resources.binary import Binary
from fhir.resources.bundle import Bundle
from fhir.resources.subscriptionstatus import SubscriptionStatus
from pydantic import ValidationError

from services.streams.domain import SubscriptionState

#: The media type of a notification (FHIR R5's JSON format, with the version parameter).
CONTENT_TYPE = "application/fhir+json; fhirVersion=5.0"
#: The media type of the native message inside the Binary.
NATIVE_CONTENT_TYPE = "application/json"
#: carepath's one SubscriptionTopic: every event type of the public contract (docs/events.md),
#: each subscription narrowing it by its own filters.
TOPIC = "https://carepath.no/fhir/SubscriptionTopic/carepath-events"
FHIR_VERSION = "5.0.0"
#: The `SubscriptionStatus.type` codes (R5 value set subscription-notification-type) sent.
EVENT, HEARTBEAT, HANDSHAKE = "event-notification", "heartbeat", "handshake"
#: `SubscriptionStatus.status` (R5 value set subscription-status) of each state.
_STATUS = {
    SubscriptionState.ACTIVE: "active",
    SubscriptionState.PAUSED: "off",
    SubscriptionState.DELETED: "off",
}
#: The Binary ids of events: UUIDv5 of the event id (the same event, the same id).
_EVENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://carepath.no/fhir/event")


class InvalidNotification(Exception):
    """A notification failed FHIR validation: a fault of carepath's mapping. Names the element
    and the kind of error, never the value (the library quotes the input)."""


def _validated(data: dict[str, Any]) -> Bundle:
    try:
        return Bundle.model_validate(data)
    except ValidationError as exc:
        where = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['type']}"
            for error in exc.errors()
        )
        raise InvalidNotification(f"Bundle: {where}") from None


def _instant(at: datetime) -> str:
    return at.isoformat()


def _json(bundle: Bundle) -> bytes:
    """The Bundle's JSON with R5's integer64 elements as strings."""
    data = json.loads(bundle.model_dump_json(exclude_none=True))
    status = data["entry"][0]["resource"]
    if "eventsSinceSubscriptionStart" in status:
        status["eventsSinceSubscriptionStart"] = str(status["eventsSinceSubscriptionStart"])
    for event in status.get("notificationEvent", []):
        event["eventNumber"] = str(event["eventNumber"])
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _status(subscription: str, state: SubscriptionState, kind: str, number: int) -> dict[str, Any]:
    return {
        "resourceType": "SubscriptionStatus",
        "status": _STATUS[state],
        "type": kind,
        "eventsSinceSubscriptionStart": number,
        "subscription": {"reference": f"Subscription/{subscription}"},
        "topic": TOPIC,
    }


def _bundle(entries: list[dict[str, Any]], now: datetime) -> bytes:
    return _json(
        _validated(
            {
                "resourceType": "Bundle",
                "id": str(uuid.uuid4()),
                "type": "subscription-notification",
                "timestamp": _instant(now),
                "entry": entries,
            }
        )
    )


def event_notification(
    subscription: str,
    state: SubscriptionState,
    event_id: str,
    position: int,
    recorded: datetime,
    message: bytes,
    now: datetime,
) -> bytes:
    """One event for one subscription: `message` is its native message (the bytes the native
    format would send), carried in a Binary that the notification's focus names."""
    binary = f"urn:uuid:{uuid.uuid5(_EVENT_NAMESPACE, event_id)}"
    status = _status(subscription, state, EVENT, position)
    status["notificationEvent"] = [
        {
            "eventNumber": position,
            "timestamp": _instant(recorded),
            "focus": {"reference": binary, "type": "Binary"},
        }
    ]
    return _bundle(
        [
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": status},
            {
                "fullUrl": binary,
                "resource": {
                    "resourceType": "Binary",
                    "contentType": NATIVE_CONTENT_TYPE,
                    "data": base64.b64encode(message).decode(),
                },
            },
        ],
        now,
    )


def status_notification(
    subscription: str, state: SubscriptionState, kind: str, position: int, now: datetime
) -> bytes:
    """A `heartbeat` or `handshake`: no event, `eventsSinceSubscriptionStart` the newest
    position the stream has examined (resume from the last event you filed, not from it)."""
    if kind not in (HEARTBEAT, HANDSHAKE):
        raise ValueError(f"not a status notification: {kind}")
    status = _status(subscription, state, kind, position)
    return _bundle([{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": status}], now)


def native_message(notification: bytes) -> dict[str, Any]:
    """The native message an event notification carries (for vendors' code and the tests):
    the Binary its focus names, decoded."""
    bundle = Bundle.model_validate_json(notification)
    entries = bundle.entry or []
    status = entries[0].resource
    assert isinstance(status, SubscriptionStatus) and status.notificationEvent
    focus = status.notificationEvent[0].focus
    assert focus is not None
    for entry in entries[1:]:
        if entry.fullUrl == focus.reference and isinstance(entry.resource, Binary):
            # fhir.resources holds base64Binary decoded
            return dict(json.loads(entry.resource.data or b"{}"))
    raise InvalidNotification("Bundle: the focus names no Binary entry")
