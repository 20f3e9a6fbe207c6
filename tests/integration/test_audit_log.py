"""The audit log on the real databases (SQLite and PostgreSQL): rows from concurrent calls of
several services form one unbroken hash chain per service; the database refuses to change or
remove a row; and when someone with the power to get around that (a database administrator)
edits, removes or cuts off rows, `python -m services.audit verify` names what happened."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
import sqlalchemy as sa

from shared import sql
from shared.audit import log as audit
from shared.audit.log import AuditLog, Entry
from tests.support import ROOT


def entry(n: int, patient: str = "urn:oid:2.16.578.1.12.4.1.4.1|12034248069") -> Entry:
    return Entry(
        at=f"2026-11-29T12:00:{n % 60:02d}.000000Z",
        request_id=f"req-{n}",
        actor_her_id="4201",
        actor_kind="MUNICIPALITY",
        actor_hpr="1203921",
        patient_key=patient,
        call="PathwayService/GetPathway",
        outcome="OK",
        basis="RESIDENCE_MUNICIPALITY",
        purpose="CARE_COORDINATION",
    )


@pytest.fixture
def engine(backend: dict[str, str]) -> sa.Engine:
    created = sql.engine(backend["audit"])
    audit.migrate(created)
    return created


def verify_command(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUDIT_DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "services.audit", "verify"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_calls_of_two_processes_from_many_threads_make_one_unbroken_chain_each(
    engine: sa.Engine,
) -> None:
    logs = [AuditLog(engine, "pathway"), AuditLog(engine, "medications")]
    threads = [
        threading.Thread(target=lambda n=n: logs[n % 2].record([entry(n), entry(n + 1000)]))
        for n in range(40)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = audit.audit_log
    with engine.connect() as conn:
        for writer in logs:
            query = sa.select(log.c.seq).where(log.c.chain == writer.chain).order_by(log.c.seq)
            assert list(conn.execute(query).scalars()) == list(range(1, 41))
    assert audit.verify(engine) == []


def test_the_database_refuses_to_change_or_remove_a_row(engine: sa.Engine) -> None:
    audit.append(engine, "pathway", [entry(1), entry(2)])
    for statement in (
        audit.audit_log.update().values(actor_her_id="9999"),
        audit.audit_log.delete(),
    ):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(statement)
    assert audit.verify(engine) == []


def _bypass_triggers(conn: sa.Connection) -> None:
    """What an administrator could do: drop the guards before tampering."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    else:
        conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")
        conn.exec_driver_sql("DROP TRIGGER audit_log_no_delete")


def test_verify_catches_an_edited_row(engine: sa.Engine, backend: dict[str, str]) -> None:
    """Someone rewrites who read a patient's pathway: the row's hash no longer matches."""
    audit.append(engine, "pathway", [entry(n) for n in range(1, 6)])
    audit.append(engine, "medications", [entry(n) for n in range(1, 3)])
    assert verify_command(backend["audit"]).returncode == 0
    log = audit.audit_log
    with engine.begin() as conn:
        _bypass_triggers(conn)
        conn.execute(
            log.update().where(log.c.chain == "pathway", log.c.seq == 3).values(actor_her_id="4301")
        )
    result = verify_command(backend["audit"])
    assert result.returncode == 1
    assert "pathway: row 3 was changed" in result.stdout
    assert audit.verify(engine) == ["pathway: row 3 was changed (its hash does not match)"]


def test_verify_catches_a_removed_row_and_a_cut_off_tail(engine: sa.Engine) -> None:
    audit.append(engine, "pathway", [entry(n) for n in range(1, 8)])
    log = audit.audit_log
    with engine.begin() as conn:
        _bypass_triggers(conn)
        conn.execute(log.delete().where(log.c.seq == 4))
        conn.execute(log.delete().where(log.c.seq == 7))
    problems = audit.verify(engine)
    assert "pathway: rows 4–4 are missing" in problems
    assert "pathway: row 5 does not link to the row before it" in problems
    assert "pathway: the log ends at row 6 but the head says 7" in problems


def test_an_intact_log_verifies(engine: sa.Engine, backend: dict[str, str]) -> None:
    audit.append(engine, "pathway", [entry(n) for n in range(1, 4)])
    audit.append(engine, "referrals", [entry(9)])
    audit.append(engine, "pathway", [entry(9)])
    result = verify_command(backend["audit"])
    assert result.returncode == 0 and "intact" in result.stdout
