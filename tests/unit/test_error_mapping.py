"""The one mapping from what a call raised to what its caller gets (shared.grpc_server.failure):
status code, message, and the google.rpc details in grpc-status-details-bin. The e2e tests
(tests/e2e/test_error_model.py) see the same over real gRPC; here every branch, including
ALREADY_EXISTS (RegisterOrganisation's taken `orgnr`, tests/e2e/test_helseid_orgnr.py)."""

from __future__ import annotations

import sqlite3

import eventsourcing.persistence as es
import grpc
import psycopg_pool
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2, status_pb2

from shared import errors
from shared.grpc_server import ERROR_DOMAIN, Failure, failure
from tests.support import make_fnr

UNAVAILABLE, ABORTED = grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED


def decoded(failed: Failure) -> tuple[status_pb2.Status, dict[str, object]]:
    status = failed.status()
    (key, value), *rest = status.trailing_metadata
    assert (key, rest) == ("grpc-status-details-bin", [])
    rich = status_pb2.Status.FromString(value)
    assert (rich.code, rich.message) == (status.code.value[0], status.details)
    found: dict[str, object] = {}
    for any_ in rich.details:
        for cls in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest):
            if any_.Is(cls.DESCRIPTOR):
                found[cls.DESCRIPTOR.name] = message = cls()
                any_.Unpack(message)
    return rich, found


@pytest.mark.parametrize(
    ("raised", "code", "reason"),
    [
        (
            errors.AlreadyExists("the organisation exists"),
            grpc.StatusCode.ALREADY_EXISTS,
            "ALREADY_EXISTS",
        ),
        (errors.NotFound("stay not found"), grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
        (errors.NotPermitted("only a hospital"), grpc.StatusCode.PERMISSION_DENIED, "NO_ACCESS"),
        (errors.Conflict("the list changed concurrently"), ABORTED, "CONFLICT"),
        (errors.NotYetKnown("the stay is not known yet"), UNAVAILABLE, "NOT_YET_KNOWN"),
    ],
)
def test_a_domain_error_keeps_its_message_and_carries_error_info(
    raised: errors.DomainError, code: grpc.StatusCode, reason: str
) -> None:
    failed = failure("/carepath.v1.X/Y", raised)
    assert (failed.code, failed.message) == (code, str(raised))
    _, found = decoded(failed)
    assert set(found) == {"ErrorInfo"}
    info = found["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain, dict(info.metadata)) == (reason, ERROR_DOMAIN, {})


def test_a_field_error_carries_its_violation() -> None:
    rich, found = decoded(failure("/m", errors.InvalidArgument("patient.value", "is required")))
    assert rich.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert rich.message == "patient.value: is required"
    bad = found["BadRequest"]
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("patient.value", "is required")
    ]
    info = found["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (info.reason, dict(info.metadata)) == ("INVALID_ARGUMENT", {"field": "patient.value"})


def test_an_impossible_transition_is_failed_precondition_naming_the_state() -> None:
    failed = failure("/m", errors.InvalidTransition("the stay", "CLOSED", "close it"))
    assert failed.code == grpc.StatusCode.FAILED_PRECONDITION
    _, found = decoded(failed)
    info = found["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (info.reason, dict(info.metadata)) == ("INVALID_TRANSITION", {"state": "CLOSED"})


@pytest.mark.parametrize(
    "raised",
    [
        es.OperationalError("database is locked"),  # eventsourcing's SQLite store
        es.OperationalError("couldn't get a connection after 5.00 sec"),  # its PostgreSQL pool
        es.InterfaceError("the connection is closed"),
        sqlite3.OperationalError("database is locked"),
        psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec"),
        sa.exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("unable to open")),
        sa.exc.TimeoutError("QueuePool limit of size 2 overflow 4 reached"),
    ],
)
def test_a_store_down_locked_or_out_of_connections_is_unavailable_without_internals(
    raised: Exception,
) -> None:
    failed = failure("/m", raised)
    assert (failed.code, failed.message) == (UNAVAILABLE, "a database is unavailable; retry")
    _, found = decoded(failed)
    info = found["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (info.reason, dict(info.metadata)) == ("STORE_UNAVAILABLE", {})


def test_a_version_conflict_the_application_did_not_retry_is_aborted() -> None:
    failed = failure("/m", es.IntegrityError("duplicate key value violates unique constraint"))
    assert (failed.code, failed.message) == (ABORTED, "the data changed concurrently; retry")


def test_anything_else_is_internal_and_says_no_more() -> None:
    number = make_fnr(12, 3, 42, 480)
    failed = failure("/m", ValueError(f"fødselsnummer {number} is odd"))
    assert (failed.code, failed.message, failed.reason) == (
        grpc.StatusCode.INTERNAL,
        "internal error",
        "INTERNAL",
    )
    rich, _ = decoded(failed)
    assert number not in str(rich)
