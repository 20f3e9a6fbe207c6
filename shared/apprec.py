"""Application receipts (AppRec): the receiver's answer to every inter-organisation message.

One definition for every service: the status and the error-list rule, and, for aggregates that
send PLO messages (a stay, a discharge), the messages they keep and the one way a receipt is
recorded on them (`MessageReceipts`). Pure domain: its mapping to and from common.proto's
AppRec is the API's (shared.api).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import event

from shared.domain import CommandContext
from shared.errors import InvalidArgument, InvalidTransition, NotFound, NotPermitted

if TYPE_CHECKING:
    from shared.domain import CarepathAggregate as _Aggregate
else:
    _Aggregate = object


class AppRecStatus(enum.StrEnum):
    OK = "OK"
    REJECTED = "REJECTED"
    OK_ERROR_IN_PART = "OK_ERROR_IN_PART"


def check_receipt(status: AppRecStatus, errors: list[dict[str, str]]) -> None:
    """REJECTED and OK_ERROR_IN_PART need at least one error (each with a code); OK none."""
    if status is AppRecStatus.OK and errors:
        raise InvalidArgument("receipt.errors", "must be empty when the status is OK")
    if status is not AppRecStatus.OK and not errors:
        raise InvalidArgument("receipt.errors", f"at least one error is required for {status}")
    for i, err in enumerate(errors):
        if not err.get("code"):
            raise InvalidArgument(f"receipt.errors[{i}].code", "is required")


class MessageAlreadyAnswered(InvalidTransition):
    """The message already has its application receipt (→ FAILED_PRECONDITION)."""

    def __init__(self, message_id: str, status: str) -> None:
        super().__init__(
            f"message {message_id}", f"already answered ({status})", "record a receipt"
        )


class MessageReceipts(_Aggregate):
    """Mixin of the aggregates that send PLO messages (`class Stay(MessageReceipts,
    CarepathAggregate)`): the messages they keep, as plain dicts by message id (set
    `self.messages = {}` when created), each answered by one receipt from its receiver, so the
    rules for recording a receipt and the reply shape are the same in every service."""

    messages: dict[str, dict[str, Any]]
    patient: dict[str, str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # eventsourcing makes an event class of each @event method in an aggregate's own
        # namespace, named after that aggregate: so each aggregate that takes the mixin gets
        # its own `MessageReceiptRecorded` (stored as `<module>:<Aggregate>.MessageReceiptRecorded`,
        # as when each aggregate wrote its own).
        if MessageReceipts in cls.__bases__:
            cls._message_receipt_recorded = event("MessageReceiptRecorded")(  # type: ignore[method-assign]
                MessageReceipts._message_receipt_recorded
            )
        super().__init_subclass__(**kwargs)

    def _add_message(
        self,
        meta: dict[str, Any],
        message_id: str,
        kind: str,
        to_her_id: str,
        from_her_id: str | None = None,
    ) -> None:
        """Apply a message sent at the event's clinical time, not yet answered; from the
        event's actor unless `from_her_id` says otherwise (a report recorded for its sender)."""
        self.messages[message_id] = {
            "message_id": message_id,
            "type": kind,
            "from_her_id": from_her_id or meta["actor"]["her_id"],
            "to_her_id": to_her_id,
            "sent_at": meta["occurred_at"],
            "receipt": None,
        }

    def record_message_receipt(
        self,
        ctx: CommandContext,
        message_id: UUID,
        status: AppRecStatus,
        errors: list[dict[str, str]],
    ) -> None:
        """The receiver's AppRec: only the message's receiver records it, once, with a valid
        error list. Allowed after the stay or discharge has ended: receipts often come late."""
        message = self.messages.get(str(message_id))
        if message is None:
            raise NotFound(f"message not found in this {type(self).__name__.lower()}")
        if ctx.actor.her_id != message["to_her_id"]:
            raise NotPermitted("only the message's receiver may record its receipt")
        if message["receipt"] is not None:
            raise MessageAlreadyAnswered(message["message_id"], message["receipt"]["status"])
        check_receipt(status, errors)
        self._message_receipt_recorded(
            meta=ctx.meta(self.patient),
            message_id=message["message_id"],
            status=status.value,
            errors=errors,
        )

    def _message_receipt_recorded(
        self, meta: dict[str, Any], message_id: str, status: str, errors: list[dict[str, str]]
    ) -> None:
        """MessageReceiptRecorded (made an event of each aggregate by `__init_subclass__`)."""
        self.messages[message_id]["receipt"] = {
            "status": status,
            "errors": errors,
            "recorded_at": meta["occurred_at"],
        }
        self._handled(meta)
