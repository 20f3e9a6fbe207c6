"""The correspondence service's domain events → the public contract
(shared.events.correspondence), one mapping per published event type. The relay publishes only
what is mapped here."""

from __future__ import annotations

from typing import Any

from shared.events import correspondence as ev
from shared.events.base import AppRecError, Contract


def message_sent(e: Any) -> ev.CorrespondenceMessageSent:
    return ev.CorrespondenceMessageSent(
        message_id=e.message_id,
        message_type=e.message_type,
        from_her_id=e.from_her_id,
        from_kind=e.from_kind,
        to_her_id=e.to_her_id,
        to_kind=e.to_kind,
        text=e.text,
    )


def request_answered(e: Any) -> ev.CorrespondenceRequestAnswered:
    return ev.CorrespondenceRequestAnswered(
        request_message_id=e.request_message_id,
        message_id=e.message_id,
        message_type=e.message_type,
        to_her_id=e.to_her_id,
        to_kind=e.to_kind,
        text=e.text,
    )


def message_receipt_recorded(e: Any) -> ev.MessageReceiptRecorded:
    return ev.MessageReceiptRecorded(
        message_id=e.message_id,
        status=e.status,
        errors=[AppRecError(code=x["code"], description=x["description"]) for x in e.errors],
    )


CONTRACT: Contract = {
    "CorrespondenceMessageSent": message_sent,
    "CorrespondenceRequestAnswered": request_answered,
    "MessageReceiptRecorded": message_receipt_recorded,
}
