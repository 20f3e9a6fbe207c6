"""Application receipts (AppRec): the receiver's answer to every inter-organisation message.

One definition for every service: the status, the error-list rule, and the conversion from
and to common.proto's AppRec.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable
from typing import Any, TypeVar, cast

from carepath.v1 import common_pb2
from shared import api
from shared.access.model import Basis, Relationship
from shared.errors import InvalidArgument, InvalidTransition, NotFound, NotPermitted
from shared.times import utc_iso

M = TypeVar("M")


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


_FROM_PB = {
    common_pb2.APP_REC_STATUS_OK: AppRecStatus.OK,
    common_pb2.APP_REC_STATUS_REJECTED: AppRecStatus.REJECTED,
    common_pb2.APP_REC_STATUS_OK_ERROR_IN_PART: AppRecStatus.OK_ERROR_IN_PART,
}
_TO_PB = {v: k for k, v in _FROM_PB.items()}


def receipt_from_request(request: Any) -> tuple[AppRecStatus, list[dict[str, str]]]:
    """The `receipt` field of a request as (status, errors); INVALID_ARGUMENT when missing."""
    if not request.HasField("receipt"):
        raise InvalidArgument("receipt", "is required")
    if request.receipt.status not in _FROM_PB:
        raise InvalidArgument("receipt.status", "is required (OK, REJECTED or OK_ERROR_IN_PART)")
    errors = [
        {"code": e.code.strip(), "description": e.description.strip()}
        for e in request.receipt.errors
    ]
    return _FROM_PB[request.receipt.status], errors


def receipt_to_pb(receipt: dict[str, Any]) -> common_pb2.AppRec:
    return common_pb2.AppRec(
        status=_TO_PB[AppRecStatus(receipt["status"])],
        errors=[common_pb2.AppRecError(**e) for e in receipt["errors"]],
    )


# --- messages between organisations, each answered by one receipt ------------------------------
# Aggregates that send PLO messages (a stay, a discharge) keep them as plain dicts made here, so
# the rules for recording a receipt and the reply shape are the same in every service.


class MessageAlreadyAnswered(InvalidTransition):
    """The message already has its application receipt (→ FAILED_PRECONDITION)."""

    def __init__(self, message_id: str, status: str) -> None:
        super().__init__(
            f"message {message_id}", f"already answered ({status})", "record a receipt"
        )


def new_message(
    meta: dict[str, Any], message_id: str, kind: str, from_her_id: str, to_her_id: str
) -> dict[str, Any]:
    """A message as sent at the event's clinical time, not yet answered."""
    return {
        "message_id": message_id,
        "type": kind,
        "from_her_id": from_her_id,
        "to_her_id": to_her_id,
        "sent_at": meta["occurred_at"],
        "receipt": None,
    }


def check_message_receipt(
    message: dict[str, Any] | None,
    receiver_her_id: str,
    status: AppRecStatus,
    errors: list[dict[str, str]],
    where: str,
) -> dict[str, Any]:
    """Only the message's receiver records its receipt, once, with a valid error list."""
    if message is None:
        raise NotFound(f"message not found in this {where}")
    if receiver_her_id != message["to_her_id"]:
        raise NotPermitted("only the message's receiver may record its receipt")
    if message["receipt"] is not None:
        raise MessageAlreadyAnswered(message["message_id"], message["receipt"]["status"])
    check_receipt(status, errors)
    return message


def answered(
    message: dict[str, Any], meta: dict[str, Any], status: str, errors: list[dict[str, str]]
) -> None:
    """Apply a recorded receipt to its message."""
    message["receipt"] = {"status": status, "errors": errors, "recorded_at": meta["occurred_at"]}


def message_to_pb(pb_class: Callable[..., M], message: dict[str, Any], type_pb: int) -> M:
    """A message with its receipt (or `unanswered`) as the service's reply type."""
    pb: Any = pb_class(
        message_id=message["message_id"],
        type=type_pb,
        from_her_id=message["from_her_id"],
        to_her_id=message["to_her_id"],
        sent_at=api.timestamp(message["sent_at"]),
        unanswered=message["receipt"] is None,
    )
    receipt = message["receipt"]
    if receipt is not None:
        pb.receipt.CopyFrom(receipt_to_pb(receipt))
        pb.receipt_recorded_at.CopyFrom(api.timestamp(receipt["recorded_at"]))
    return cast(M, pb)


def message_parties(
    messages: Iterable[dict[str, Any]], municipal_types: Collection[str], open_until: str | None
) -> list[Relationship]:
    """The parties a resource's messages make (for the access policy, at once, from the
    resource itself): each message's receiver, for its receipt (RECEIPT_DUE: it owes it, or
    repeats the one it gave, which returns the first result; a second one the message itself
    refuses), and each municipality sent one of `municipal_types` about a stay, while the stay
    is open (MESSAGE_RECEIVER; `open_until`: when the stay closed, None while open)."""
    parties = [Relationship.party(m["to_her_id"], Basis.RECEIPT_DUE) for m in messages]
    parties += [
        Relationship(m["to_her_id"], Basis.MESSAGE_RECEIVER, utc_iso(m["sent_at"]), open_until)
        for m in messages
        if m["type"] in municipal_types
    ]
    return parties
