"""Who may put a message back into a consumer's queue, what a dead letter says about itself, and
which letters the operator's tool replays (shared.amqp.origin_of, shared.deadletters)."""

from __future__ import annotations

import json

import pika
import pytest

from shared import amqp
from shared.deadletters import letter, refusal
from shared.events import ContractError
from tests.support import make_fnr

PATIENT = make_fnr(9, 9, 49, 480)
QUEUE = "evt-discharges-PatientDischarged--admissions_reactions.handle_patient_discharged"


@pytest.fixture(autouse=True)
def prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_USER_PREFIX", "carepath-")


def headers(attempts: int = 2) -> dict[str, object]:
    return amqp.dead_letter_headers(
        "not applied by handle_patient_discharged: OperationalError: database is locked",
        amqp.Origin("discharges.events", "PatientDischarged", "carepath-discharges"),
        consumer=QUEUE,
        attempts=attempts,
    )


def test_a_message_from_an_events_exchange_is_its_own_origin() -> None:
    origin = amqp.origin_of(
        "discharges.events", "PatientDischarged", "carepath-discharges", headers(), "x"
    )
    assert origin == amqp.Origin("discharges.events", "PatientDischarged", "carepath-discharges")


@pytest.mark.parametrize("by", ["carepath-admissions", "carepath-deadletters"])
def test_a_message_put_back_by_its_consumer_or_the_operator_carries_its_origin(by: str) -> None:
    origin = amqp.origin_of("", QUEUE, by, headers(attempts=2), "carepath-admissions")
    assert origin == amqp.Origin(
        "discharges.events", "PatientDischarged", "carepath-discharges", attempts=2
    )


@pytest.mark.parametrize("by", [None, "carepath-referrals", "guest", "carepath-operator"])
def test_a_message_put_back_by_anyone_else_is_refused(by: str | None) -> None:
    with pytest.raises(ContractError, match="not by its consumer or operator"):
        amqp.origin_of("", QUEUE, by, headers(), "carepath-admissions")


def test_a_message_put_back_without_its_origin_is_refused() -> None:
    with pytest.raises(ContractError, match="without x-original-exchange"):
        amqp.origin_of("", QUEUE, "carepath-admissions", {}, "carepath-admissions")


def test_retries_wait_longer_up_to_the_last_level() -> None:
    assert [amqp.retry_exchange(n) for n in range(1, 6)] == [
        "carepath.retry.1",
        "carepath.retry.2",
        "carepath.retry.3",
        "carepath.retry.3",
        "carepath.retry.3",
    ]


def body(event_id: str = "a1:3") -> bytes:
    return json.dumps(
        {"event_id": event_id, "event_type": "PatientDischarged", "source": "discharges",
         "patient": {"value": PATIENT}}
    ).encode()  # fmt: skip


def test_a_consumers_letter_lists_its_event_reason_attempts_and_consumer_never_the_payload() -> (
    None
):
    props = pika.BasicProperties(user_id="carepath-admissions", headers=headers(attempts=8))
    one = letter(7, props, body())
    assert (one.consumer, one.event_id, one.event_type, one.source, one.attempts) == (
        QUEUE, "a1:3", "PatientDischarged", "discharges", "8",
    )  # fmt: skip
    assert "database is locked" in one.reason
    assert PATIENT not in one.line()
    assert refusal(one) is None


def test_a_letter_another_service_parked_for_this_queue_is_not_replayed() -> None:
    props = pika.BasicProperties(user_id="carepath-referrals", headers=headers())
    assert refusal(letter(1, props, body())) == (
        f"parked by carepath-referrals, not by the service that consumes {QUEUE}"
    )


def test_a_letter_the_broker_dead_lettered_is_replayable_with_its_own_sender() -> None:
    props = pika.BasicProperties(
        user_id="carepath-discharges",
        headers={
            "x-first-death-queue": QUEUE,
            "x-death": [
                {"reason": "delivery_limit", "queue": QUEUE, "count": 1,
                 "exchange": "discharges.events", "routing-keys": ["PatientDischarged"]}
            ],
        },
    )  # fmt: skip
    one = letter(2, props, body())
    assert one.consumer == QUEUE
    assert one.reason == "dead-lettered by the broker: delivery_limit"
    assert one.origin == amqp.Origin(
        "discharges.events", "PatientDischarged", "carepath-discharges"
    )
    assert refusal(one) is None


def test_a_letter_a_relay_parked_names_no_consumer_and_is_not_replayed() -> None:
    props = pika.BasicProperties(
        message_id="r1:1",
        headers=amqp.dead_letter_headers(
            "breaks its declaration", amqp.Origin("referrals.events", "X", None)
        ),
    )
    one = letter(3, props, b'{"event_id": "r1:1", "event_type": "X", "source": "referrals"}')
    assert one.consumer is None
    assert "parked before it was published" in str(refusal(one))
