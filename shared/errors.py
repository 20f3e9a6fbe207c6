"""Named domain errors. Domain code raises these; `shared.grpc_server.failure` maps them (and the
store's infrastructure errors) to gRPC status codes in one place, so every service answers the
same way. What a client does with each code (docs/errors.md):

- INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS, NOT_FOUND, PERMISSION_DENIED: the
  request or the state is wrong; the same request will fail again (fix it, don't retry);
- UNAVAILABLE (a store, the audit log or the token issuer cannot be reached or is locked; a fact
  another service records has not reached this one yet) and ABORTED (a concurrent change of the
  same aggregate): retry the same command, with the same command id, after a backoff; the
  service config of `shared.grpc_client` does so for every carepath client.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a caller can cause. The message is safe to return to the caller:
    it never contains personal identifiers or clinical text."""


class InvalidArgument(DomainError):
    """A field of the request is missing or malformed (→ INVALID_ARGUMENT, with a
    google.rpc.BadRequest field violation naming `field`)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidTransition(DomainError):
    """The command is impossible in the aggregate's current state (→ FAILED_PRECONDITION).
    Only for what stays impossible: retrying the same command cannot help."""

    def __init__(self, what: str, current_state: str, action: str) -> None:
        super().__init__(f"cannot {action}: {what} is {current_state}")
        self.current_state = current_state


class AlreadyExists(DomainError):
    """→ ALREADY_EXISTS; `field` names the request field whose value is taken (ErrorInfo
    metadata `field`), e.g. an organisation number another organisation holds."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(DomainError):
    """→ NOT_FOUND"""


class NotPermitted(DomainError):
    """The caller's organisation may not do this (→ PERMISSION_DENIED)."""


class Conflict(DomainError):
    """The aggregate kept changing under the command through every in-process attempt
    (→ ABORTED: retry the same command; it re-runs the rules on the new state)."""


class NotYetKnown(DomainError):
    """A fact the command needs is recorded by another service and has not reached this one
    yet (its events are on the way: → UNAVAILABLE, retry with backoff)."""
