"""Page tokens: opaque to the caller, bound to the query they page through.

A token is the URL-safe base64 of: a version byte, the position of the next page (an offset
or a row id, whatever the list uses), a digest of the query (the request without its
`page_token` and `page_size`), and a check over all three. So a token cannot be read or
edited as a number, a token cut short or altered is refused, and a token from another query
(other filters, another patient, another list) is refused too — each INVALID_ARGUMENT naming
`page_token`. The check is for integrity, not secrecy: a position reveals nothing, and the
access policy decides every page anew.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

from google.protobuf.message import Message

from shared.errors import InvalidArgument

VERSION = 1
_LAYOUT = struct.Struct(">BQ8s")  # version, position, query digest
_CHECK_SIZE = 8
_CHECK_KEY = b"carepath page token"
_REFUSAL = "is not a token from a previous page of this query"


def _query_digest(request: Message) -> bytes:
    query = type(request)()
    query.CopyFrom(request)
    query.ClearField("page_token")
    query.ClearField("page_size")
    blob = query.DESCRIPTOR.full_name.encode() + b"\0" + query.SerializeToString(deterministic=True)
    return hashlib.blake2b(blob, digest_size=8).digest()


def _check(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=_CHECK_SIZE, key=_CHECK_KEY).digest()


def next_token(request: Message, position: int) -> str:
    """The token of the page that starts at `position` of the query `request` asked."""
    body = _LAYOUT.pack(VERSION, position, _query_digest(request))
    return base64.urlsafe_b64encode(body + _check(body)).decode().rstrip("=")


def position(request: Message) -> int | None:
    """The position `request.page_token` names; None for the first page."""
    token: str = getattr(request, "page_token")  # noqa: B009 (every paged request has one)
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument("page_token", _REFUSAL) from exc
    body, check = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
    if len(raw) != _LAYOUT.size + _CHECK_SIZE or not hmac.compare_digest(check, _check(body)):
        raise InvalidArgument("page_token", _REFUSAL)
    version, at, digest = _LAYOUT.unpack(body)
    if version != VERSION or digest != _query_digest(request):
        raise InvalidArgument("page_token", _REFUSAL)
    return int(at)
