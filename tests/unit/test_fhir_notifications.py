"""FHIR R5 notifications (services/streams/notifications.py, selection.message_of): a
subscription that chose FHIR_R5 gets each event as a `subscription-notification` Bundle whose
SubscriptionStatus numbers it with its stream position and whose focus is the very native
message a NATIVE subscription would get — minimised the same way — validated with
fhir.resources' R5 models."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime

import pytest
from fhir.resources.binary import Binary
from fhir.resources.bundle import Bundle
from fhir.resources.subscriptionstatus import SubscriptionStatus

from services.streams import notifications
from services.streams.domain import NotificationFormat, SubscriptionState
from services.streams.filters import vendor_body
from services.streams.selection import Selected, content_type, message_bytes, message_of
from tests.unit.test_vendor_filters import PRESCRIBED, route

NOW = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)
FHIR = dataclasses.replace(route(), notification_format=NotificationFormat.FHIR_R5)


def selected(r: object, position: int = 4711) -> Selected:
    body, _ = vendor_body(PRESCRIBED, r, position)  # type: ignore[arg-type]
    return Selected(r, PRESCRIBED, position, body, None)  # type: ignore[arg-type]


def test_a_fhir_subscription_gets_an_event_notification_numbered_by_the_stream_position() -> None:
    sent = message_of(selected(FHIR), NOW)
    bundle = Bundle.model_validate_json(sent)  # validates as R5
    assert bundle.type == "subscription-notification"
    entries = bundle.entry or []
    status = entries[0].resource
    assert isinstance(status, SubscriptionStatus)
    assert (status.type, status.status) == ("event-notification", "active")
    assert status.subscription.reference == "Subscription/fjordvik-ehr"
    assert status.topic == notifications.TOPIC
    assert status.eventsSinceSubscriptionStart == 4711
    (event,) = status.notificationEvent or []
    assert event.eventNumber == 4711
    assert event.timestamp == PRESCRIBED.recorded
    assert event.focus is not None and event.focus.type == "Binary"
    binary = entries[1]
    assert binary.fullUrl == event.focus.reference
    assert isinstance(binary.resource, Binary)
    assert binary.resource.contentType == "application/json"
    # R5 writes integer64 as JSON strings
    raw = json.loads(sent)["entry"][0]["resource"]
    assert raw["eventsSinceSubscriptionStart"] == "4711"
    assert raw["notificationEvent"][0]["eventNumber"] == "4711"
    assert content_type(FHIR) == "application/fhir+json; fhirVersion=5.0"
    assert content_type(route()) == "application/json"


def test_the_focus_is_the_native_message_minimised_exactly_as_for_a_native_subscription() -> None:
    native = message_of(selected(route()), NOW)
    assert native == message_bytes(selected(route()).body)
    carried = notifications.native_message(message_of(selected(FHIR), NOW))
    assert carried == json.loads(native)
    assert "reason" not in carried["data"] and carried["omitted"] == ["data.reason"]
    raw = json.loads(message_of(selected(FHIR), NOW))["entry"][1]["resource"]
    assert base64.b64decode(raw["data"]) == native  # the JSON carries it base64-encoded


def test_a_paused_subscriptions_queued_notification_says_it_is_off() -> None:
    paused = dataclasses.replace(FHIR, state=SubscriptionState.PAUSED)
    status = Bundle.model_validate_json(message_of(selected(paused), NOW)).entry[0].resource  # type: ignore[index]
    assert status.status == "off"  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", [notifications.HEARTBEAT, notifications.HANDSHAKE])
def test_heartbeats_and_handshakes_carry_no_event_and_the_streams_position(kind: str) -> None:
    sent = notifications.status_notification(
        "fjordvik-ehr", SubscriptionState.ACTIVE, kind, 99, NOW
    )
    bundle = Bundle.model_validate_json(sent)
    (entry,) = bundle.entry or []
    status = entry.resource
    assert isinstance(status, SubscriptionStatus)
    assert status.type == kind and not status.notificationEvent
    assert status.eventsSinceSubscriptionStart == 99
    with pytest.raises(ValueError, match="not a status notification"):
        notifications.status_notification(
            "fjordvik-ehr", SubscriptionState.ACTIVE, notifications.EVENT, 1, NOW
        )
