"""The error model a client can act on, over real gRPC on loopback (docs/errors.md): a store that
cannot be reached or is locked is UNAVAILABLE, a concurrency conflict ABORTED, and the retry
policy of every carepath channel (shared.grpc_client) retries both with the same request — the
same command id, so the command is applied once; field errors carry google.rpc.BadRequest and
every other error google.rpc.ErrorInfo, read back with grpcio-status.

The stores are real: SQLite files held locked by another connection, the machine's PostgreSQL
reached through a TCP relay of the test's own that is cut (connections refused, open ones
dropped), and the test database's own sessions terminated."""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
import psycopg
import pytest
import sqlalchemy as sa
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    medications_pb2,
    medications_pb2_grpc,
)
from services.admissions import api as admissions_api
from services.admissions.application import AdmissionsApplication
from services.pathway import migrate, readmodel
from shared import grpc_client
from shared.audit.log import audit_log
from shared.config import Pool, StoreSettings
from shared.grpc_server import ERROR_DOMAIN, Server
from shared.ids import FNR_SYSTEM
from shared.store import CarepathApplication
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_HOSPITAL
from tests.support import Harness, auth, free_port, grpc_server, make_fnr, meta, wait_for

PATIENT = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(14, 2, 61, 220))
OTHER = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(15, 3, 62, 230))


def admit(command_id: str, patient: common_pb2.PatientIdentifier = PATIENT, **fields: Any) -> Any:
    return admissions_pb2.AdmitPatientRequest(
        metadata=meta(command_id, hours=-1),
        patient=patient,
        ward=fields.get("ward", "Medisinsk sengepost 3"),
        admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
        municipality_her_id=MUNICIPALITY.her_id,
    )


def stored(app: CarepathApplication) -> int:
    """The events the store holds (counted, not the highest id: PostgreSQL's ids have gaps)."""
    return len(app.recorder.select_notifications(start=1, limit=100_000))


def details(error: grpc.RpcError) -> dict[str, Message]:
    """The status details, by type name (grpcio-status reads grpc-status-details-bin)."""
    status = rpc_status.from_call(error)
    assert status is not None, "no rich status"
    assert status.message == error.details()  # the message stays the human-readable one
    found: dict[str, Message] = {}
    for any_ in status.details:
        for cls in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest):
            if any_.Is(cls.DESCRIPTOR):
                found[cls.DESCRIPTOR.name] = cls()
                any_.Unpack(found[cls.DESCRIPTOR.name])
    return found


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    info = details(error)["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.domain == ERROR_DOMAIN
    return info


def refused(call: Any, request: Message, actor: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=auth(actor), timeout=60)
    return caught.value


@dataclass
class Alone:
    """One admissions server of its own, on the store given, with the access policy and the
    audit log on SQLite files (any hospital may admit: no register facts are needed)."""

    app: AdmissionsApplication
    server: Server
    audit: sa.Engine

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def outcomes(self, call: str = "AdmitPatient") -> list[str]:
        """The outcomes the audit log has for `call`, oldest first."""
        query = sa.select(audit_log.c.outcome).where(audit_log.c.call.like(f"%{call}"))
        with self.audit.connect() as conn:
            return list(conn.execute(query.order_by(audit_log.c.id)).scalars())


@contextmanager
def alone(tmp_path: Path, store: dict[str, str]) -> Iterator[Alone]:
    app = AdmissionsApplication(env=store)
    urls = {
        name: f"sqlite:///{tmp_path}/{name}.sqlite" for name in ("pathway", "audit", "revocations")
    }
    migrate.upgrade(readmodel.create_engine(urls["pathway"]))
    audit = sa.create_engine(urls["audit"])
    try:
        with grpc_server("admissions", admissions_api, app, urls) as server:
            yield Alone(app, server, audit)
    finally:
        audit.dispose()
        app.close()


def sqlite_store(path: Path, lock_timeout: int = 1) -> dict[str, str]:
    """The store's settings as a service has them, with a short wait for SQLite's lock."""
    env = StoreSettings(f"sqlite:///{path}").eventsourcing_env("admissions")
    return {**env, "SQLITE_LOCK_TIMEOUT": str(lock_timeout)}


@contextmanager
def write_locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holds the SQLite file's write lock (as a long writer would)."""
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        yield locker
    finally:
        if locker.in_transaction:
            locker.execute("ROLLBACK")
        locker.close()


# --- a locked store, a lost audit answer: retried with the same command id, applied once -----


def test_a_locked_store_is_unavailable_and_the_retry_policy_applies_the_command_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "admissions.sqlite"
    with (
        alone(tmp_path, sqlite_store(path)) as served,
        grpc_client.channel(served.address) as channel,
    ):
        stub = admissions_pb2_grpc.AdmissionServiceStub(channel)
        stub.AdmitPatient(admit("reference", OTHER), metadata=auth(HOSPITAL))
        per_admission = stored(served.app)

        with write_locked(path) as locker:
            # Seen without the retry policy: UNAVAILABLE, with a reason and no internals.
            with grpc.insecure_channel(served.address) as plain:
                once = admissions_pb2_grpc.AdmissionServiceStub(plain).AdmitPatient
                error = refused(once, admit("admit-1"), HOSPITAL)
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert error.details() == "a database is unavailable; retry"
            assert error_info(error).reason == "STORE_UNAVAILABLE"
            assert error_info(error).metadata == {}

            # With it: the same command is sent again until the lock is gone.
            future = stub.AdmitPatient.future(admit("admit-1"), metadata=auth(HOSPITAL), timeout=60)
            wait_for(
                lambda: served.outcomes().count("UNAVAILABLE") >= 2,
                what="an attempt of the retrying client answered UNAVAILABLE",
            )
            locker.execute("ROLLBACK")
        stay = future.result()

        assert stay.state == admissions_pb2.STAY_STATE_OPEN
        assert stored(served.app) == 2 * per_admission
        again = stub.AdmitPatient(admit("admit-1"), metadata=auth(HOSPITAL))
        assert again.stay_id == stay.stay_id  # the same command: its first result
        assert stored(served.app) == 2 * per_admission
        assert served.outcomes()[-2:] == ["OK", "OK"]


def test_a_command_stored_whose_answer_was_lost_is_applied_once_when_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command is stored, then its call cannot be put on record (the audit log is locked):
    the caller gets UNAVAILABLE though the stay exists. The retry policy sends the same command
    id again, and the service answers with the first result instead of admitting twice."""
    monkeypatch.setattr("shared.audit.log._LOCK_WAIT", 1.0)  # the audit writer's wait (30 s)
    caplog.set_level(logging.ERROR, logger="shared.grpc_server")
    with (
        alone(tmp_path, sqlite_store(tmp_path / "admissions.sqlite")) as served,
        grpc_client.channel(served.address) as channel,
    ):
        stub = admissions_pb2_grpc.AdmissionServiceStub(channel)
        stub.AdmitPatient(admit("reference", OTHER), metadata=auth(HOSPITAL))
        per_admission = stored(served.app)

        with write_locked(tmp_path / "audit.sqlite") as locker:
            future = stub.AdmitPatient.future(
                admit("admit-once"), metadata=auth(HOSPITAL), timeout=60
            )
            wait_for(
                lambda: "audit log unavailable" in caplog.text,
                what="an attempt answered UNAVAILABLE after the stay was stored",
            )
            assert stored(served.app) == 2 * per_admission
            locker.execute("ROLLBACK")
        stay = future.result()

        assert stored(served.app) == 2 * per_admission  # admitted once
        again = stub.AdmitPatient(admit("admit-once"), metadata=auth(HOSPITAL))
        assert again.stay_id == stay.stay_id
        assert stored(served.app) == 2 * per_admission


# --- PostgreSQL: unreachable, then sessions terminated ----------------------------------------


class Relay:
    """A TCP relay from a port of its own to PostgreSQL: `cut()` refuses new connections and
    drops the open ones (the database is unreachable); `mend()` listens again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.mend()

    def mend(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        if self._listener is not None:
            with suppress(OSError):  # wakes the thread in accept() (Linux), then refuses
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for sock in self._open:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def test_postgres_unreachable_is_unavailable_and_the_same_command_applies_once_after(
    tmp_path: Path, postgres_url: str
) -> None:
    parts = urlsplit(postgres_url)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
    netloc = f"{parts.username or 'postgres'}"
    netloc += f":{parts.password}" if parts.password else ""
    relayed = urlunsplit(parts._replace(netloc=f"{netloc}@127.0.0.1:{relay.port}"))
    store = {
        **StoreSettings(relayed, Pool(idle=1, size=1)).eventsourcing_env("admissions"),
        "POSTGRES_CONNECT_TIMEOUT": "1",
    }
    try:
        with alone(tmp_path, store) as served, grpc_client.channel(served.address) as channel:
            stub = admissions_pb2_grpc.AdmissionServiceStub(channel)
            stub.AdmitPatient(admit("reference", OTHER), metadata=auth(HOSPITAL))
            per_admission = stored(served.app)

            relay.cut()
            with grpc.insecure_channel(served.address) as plain:
                once = admissions_pb2_grpc.AdmissionServiceStub(plain).AdmitPatient
                error = refused(once, admit("admit-pg"), HOSPITAL)
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert error.details() == "a database is unavailable; retry"
            assert error_info(error).reason == "STORE_UNAVAILABLE"
            assert PATIENT.value not in str(rpc_status.from_call(error))

            relay.mend()

            def admitted() -> admissions_pb2.Stay | None:
                try:
                    return stub.AdmitPatient(admit("admit-pg"), metadata=auth(HOSPITAL))
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE
                    return None

            stay = wait_for(admitted, what="the store reachable again")
            assert stub.AdmitPatient(admit("admit-pg"), metadata=auth(HOSPITAL)) == stay
            assert stored(served.app) == 2 * per_admission
    finally:
        relay.cut()


def test_terminated_postgres_sessions_are_retried_transparently(
    tmp_path: Path, postgres_url: str
) -> None:
    """The store's pooled connections are terminated under it (as a restart or a failover
    does): the pool replaces a connection the server closed, or the attempt that meets it is
    UNAVAILABLE and the retry policy's next one gets a new connection. The caller sees only
    the stay, stored once."""
    store = StoreSettings(postgres_url, Pool(idle=1, size=1)).eventsourcing_env("admissions")
    with alone(tmp_path, store) as served, grpc_client.channel(served.address) as channel:
        stub = admissions_pb2_grpc.AdmissionServiceStub(channel)
        stub.AdmitPatient(admit("reference", OTHER), metadata=auth(HOSPITAL))
        per_admission = stored(served.app)
        database = urlsplit(postgres_url).path.lstrip("/")
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            ended = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchone()
        assert ended is not None and ended[0] >= 1

        stay = stub.AdmitPatient(admit("admit-after"), metadata=auth(HOSPITAL), timeout=60)

        assert stay.state == admissions_pb2.STAY_STATE_OPEN
        assert stored(served.app) == 2 * per_admission
        outcomes = served.outcomes()
        assert outcomes[-1] == "OK" and set(outcomes) <= {"OK", "UNAVAILABLE"}


# --- concurrency, field violations and ErrorInfo on the whole system --------------------------


@pytest.fixture
def registered(system: Harness) -> None:
    system.register({"system": FNR_SYSTEM, "value": PATIENT.value}, gp=GP)


@pytest.mark.usefixtures("registered")
def test_concurrent_changes_of_one_list_are_each_applied_once(system: Harness) -> None:
    """Twelve prescriptions for one patient's list at once: commands that lose the race for the
    same aggregate are re-run in the service, and past its attempts answered ABORTED, which the
    retry policy sends again. Every one is applied, once."""
    stub = medications_pb2_grpc.MedicationServiceStub(system.channel(system.servers["medications"]))
    app = system.apps["medications"]
    before = stored(app)

    def prescribe(n: int) -> medications_pb2.MedicationList:
        request = medications_pb2.PrescribeMedicationRequest(
            metadata=meta(f"rx-{n}", hours=-48),
            patient=PATIENT,
            medication=medications_pb2.Medication(atc_code="A10BA02", name=f"Metformin {n}"),
            dose="500 mg x 2",
            reason="Diabetes type 2",
        )
        return stub.PrescribeMedication(request, metadata=auth(GP), timeout=60)

    with ThreadPoolExecutor(12) as pool:
        replies = list(pool.map(prescribe, range(12)))

    final = stub.GetMedicationList(
        medications_pb2.GetMedicationListRequest(patient=PATIENT), metadata=auth(GP)
    )
    assert sorted(e.medication.name for e in final.entries) == sorted(
        f"Metformin {n}" for n in range(12)
    )
    assert stored(app) - before == 1 + 12  # the list started once, one event per prescription
    assert max(r.version for r in replies) == final.version
    outcomes = {
        row.outcome
        for row in system.audit_rows({"system": FNR_SYSTEM, "value": PATIENT.value})
        if row.call.endswith("PrescribeMedication")
    }
    assert outcomes <= {"OK", "ABORTED"}


def test_a_field_error_carries_a_bad_request_naming_the_field(system: Harness) -> None:
    stub = admissions_pb2_grpc.AdmissionServiceStub(system.channel(system.servers["admissions"]))
    error = refused(stub.AdmitPatient, admit("no-ward", ward=""), HOSPITAL)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "ward: is required"
    found = details(error)
    bad_request = found["BadRequest"]
    assert isinstance(bad_request, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("ward", "is required")
    ]
    assert error_info(error).reason == "INVALID_ARGUMENT"
    assert dict(error_info(error).metadata) == {"field": "ward"}

    too_long = admit("long-ward", ward="x" * 5000)
    error = refused(stub.AdmitPatient, too_long, HOSPITAL)
    (violation,) = details(error)["BadRequest"].field_violations  # type: ignore[attr-defined]
    assert violation.field == "ward"
    assert violation.description.startswith("must be at most ")


def test_other_errors_carry_error_info_with_a_reason(system: Harness) -> None:
    stub = admissions_pb2_grpc.AdmissionServiceStub(system.channel(system.servers["admissions"]))
    stay = stub.AdmitPatient(admit("info-admit"), metadata=auth(HOSPITAL))
    notice = admissions_pb2.SendAdmissionNoticeRequest(
        metadata=meta("info-notice", hours=-1), stay_id=stay.stay_id
    )
    stub.SendAdmissionNotice(notice, metadata=auth(HOSPITAL))
    receipt = admissions_pb2.RecordMessageReceiptRequest(
        metadata=meta("info-receipt", hours=-1),
        stay_id=stay.stay_id,
        message_id="0b7f5b57-1d0e-4f55-a1f3-1f1b8f1f0000",
        receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK),
    )
    error = refused(stub.RecordMessageReceipt, receipt, MUNICIPALITY)  # a receipt is due
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert (error_info(error).reason, dict(error_info(error).metadata)) == ("NOT_FOUND", {})

    close = admissions_pb2.CloseStayRequest(
        metadata=meta("info-close", hours=-1),
        stay_id=stay.stay_id,
        reason=admissions_pb2.STAY_CLOSE_REASON_DISCHARGED,
    )
    stub.CloseStay(close, metadata=auth(HOSPITAL))
    close.metadata.command_id = "info-close-again"
    error = refused(stub.CloseStay, close, HOSPITAL)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "cannot close the stay: the stay is CLOSED"
    info = error_info(error)
    assert (info.reason, dict(info.metadata)) == ("INVALID_TRANSITION", {"state": "CLOSED"})
    assert "BadRequest" not in details(error)


def test_permission_denied_is_the_same_status_for_a_known_and_an_unknown_stay(
    system: Harness,
) -> None:
    stub = admissions_pb2_grpc.AdmissionServiceStub(system.channel(system.servers["admissions"]))
    stay = stub.AdmitPatient(admit("denied-admit"), metadata=auth(HOSPITAL))
    statuses = []
    for stay_id in (stay.stay_id, "0b7f5b57-1d0e-4f55-a1f3-1f1b8f1f0000"):
        request = admissions_pb2.GetStayRequest(stay_id=stay_id)
        error = refused(stub.GetStay, request, OTHER_HOSPITAL)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(error).reason == "NO_ACCESS"
        statuses.append(rpc_status.from_call(error))
    assert statuses[0] == statuses[1]
