"""Application receipts (AppRec): the receiver's answer to every inter-organisation message.

One definition for every service: the status, the error-list rule, and the conversion from
and to common.proto's AppRec.
"""

from __future__ import annotations

import enum
from typing import Any

from carepath.v1 import common_pb2
from shared.errors import InvalidArgument


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
