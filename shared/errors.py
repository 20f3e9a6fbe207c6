"""Named domain errors. Domain code raises these; `shared.grpc_server` maps them to gRPC
status codes in one place, so every service answers bad input the same way."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a caller can cause. The message is safe to return to the caller:
    it never contains personal identifiers or clinical text."""


class InvalidArgument(DomainError):
    """A field of the request is missing or malformed (→ INVALID_ARGUMENT)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidTransition(DomainError):
    """The command is impossible in the aggregate's current state (→ FAILED_PRECONDITION)."""

    def __init__(self, what: str, current_state: str, action: str) -> None:
        super().__init__(f"cannot {action}: {what} is {current_state}")
        self.current_state = current_state


class AlreadyExists(DomainError):
    """→ ALREADY_EXISTS"""


class NotFound(DomainError):
    """→ NOT_FOUND"""


class NotPermitted(DomainError):
    """The caller's organisation may not do this (→ PERMISSION_DENIED)."""
