"""The relay publishes only what the contract declares: a stored event whose payload breaks it
(stored before the bound existed: an AppRec error of a million characters) is put on the
dead-letter queue with the reason, the events around it are published, and the relay moves on."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from services.referrals.application import ReferralsApplication
from services.referrals.domain import Priority
from shared.apprec import AppRecStatus
from shared.broker import Tenant
from shared.domain import CommandContext
from shared.events import Envelope
from tests.conftest import GP, HOSPITAL
from tests.support import bind_test_queue, drain_queue, outbox_relay, unique_queue
from tests.wire import PATIENT, dead_letters, empty_dead_letters

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def test_a_stored_event_that_breaks_the_contract_is_dead_lettered_and_the_rest_published(
    backend: dict[str, str], broker: Tenant, amqp_uri: str
) -> None:
    app = ReferralsApplication.from_url(backend["referrals"])
    try:
        sent = app.send_referral(
            CommandContext("s", T0, GP, "c"),
            PATIENT,
            HOSPITAL.her_id,
            "Smerter",
            Priority.ROUTINE,
            None,
        )
        huge = [{"code": "E10", "description": "x" * 1_000_000}]  # the domain has no bound
        app.record_receipt(
            CommandContext("r", T0 + timedelta(hours=1), HOSPITAL, "c"),
            sent.id,
            AppRecStatus.OK_ERROR_IN_PART,
            huge,
        )
        app.cancel(CommandContext("x", T0 + timedelta(hours=2), GP, "c"), sent.id, "Bedring")
        queue = unique_queue()
        bind_test_queue(amqp_uri, "referrals.events", queue)
        empty_dead_letters(amqp_uri)
        with outbox_relay(app, backend["referrals"], broker) as relay:
            while relay.relay_once():
                pass
            assert relay.position == app.recorder.max_notification_id()
        published = [Envelope.from_json(b) for b in drain_queue(amqp_uri, queue)]
        assert [e.event_type for e in published] == ["ReferralSent", "ReferralCancelled"]
        ((reason, body),) = dead_letters(amqp_uri)
        assert json.loads(body) == {
            "event_id": f"{sent.id}:2",
            "event_type": "ReferralReceiptRecorded",
            "source": "referrals",
        }
        assert (
            "ReferralReceiptRecorded breaks its contract: description: String should have at most"
            in reason
        )
    finally:
        app.close()
