"""The audit log on the real databases (SQLite and PostgreSQL): rows from concurrent calls of
several services form one unbroken hash chain per service; the database refuses to change or
remove a row; and when someone with the power to get around that (a database administrator)
edits, removes or cuts off rows, `python -m services.audit verify` names what happened."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading

import pytest
import sqlalchemy as sa

from shared import sql
from shared.audit import log as audit
from shared.audit.log import AuditLog, Entry
from tests.support import ROOT, make_fnr

PATIENT = f"urn:oid:2.16.578.1.12.4.1.4.1|{make_fnr(12, 3, 42, 480)}"


def entry(n: int, patient: str = PATIENT) -> Entry:
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


def test_rows_written_before_organisation_numbers_verify_after_the_migration(
    backend: dict[str, str],
) -> None:
    """A log written at schema revision 0001 (no actor_orgnr), hashed as rows were then, is
    migrated to the newest schema; its old rows verify unchanged, and rows that carry the
    caller's organisation number chain on after them."""
    from alembic import command
    from alembic.config import Config

    engine = sql.engine(backend["audit"])
    cfg = Config()
    cfg.set_main_option("script_location", str(audit.MIGRATIONS))
    cfg.attributes["version_table"] = audit.VERSION_TABLE
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0001")
    old_fields = [f for f in audit.ENTRY_FIELDS if f != "actor_orgnr"]
    prev = audit.GENESIS
    with engine.begin() as conn:
        for seq in (1, 2, 3):
            values = entry(seq)._asdict()
            del values["actor_orgnr"]
            payload = [prev, "pathway-old", seq, *(values[f] for f in old_fields)]
            digest = hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()
            conn.execute(
                sa.text(
                    f"INSERT INTO audit_log (chain, seq, {', '.join(old_fields)}, prev_hash, hash)"
                    f" VALUES ('pathway-old', {seq}, {', '.join(':' + f for f in old_fields)},"
                    " :prev_hash, :hash)"
                ),
                {**values, "prev_hash": prev, "hash": digest},
            )
            prev = digest
        conn.execute(
            sa.text("INSERT INTO audit_head (chain, seq, hash) VALUES ('pathway-old', 3, :h)"),
            {"h": prev},
        )
    audit.migrate(engine)
    head = audit.append(engine, "pathway-old", [entry(4)._replace(actor_orgnr="883016610")])
    assert head[0] == 4
    writer = AuditLog(engine, "pathway")
    writer.record([entry(5)._replace(actor_orgnr="883016610"), entry(6)])
    writer.close()
    result = verify_command(backend["audit"])
    assert result.returncode == 0, result.stdout
    assert "audit log: intact" in result.stdout
    with engine.connect() as conn:
        orgnrs = conn.execute(
            sa.select(audit.audit_log.c.seq, audit.audit_log.c.actor_orgnr)
            .where(audit.audit_log.c.chain == "pathway-old")
            .order_by(audit.audit_log.c.seq)
        ).all()
    assert [tuple(r) for r in orgnrs] == [(1, None), (2, None), (3, None), (4, "883016610")]
    engine.dispose()


@pytest.mark.parametrize("changed", [None, "974760673"])
def test_verify_catches_a_removed_or_changed_organisation_number(
    engine: sa.Engine, changed: str | None
) -> None:
    audit.append(engine, "pathway", [entry(n)._replace(actor_orgnr="883016610") for n in (1, 2)])
    assert audit.verify(engine) == []
    log = audit.audit_log
    with engine.begin() as conn:
        _bypass_triggers(conn)
        conn.execute(log.update().where(log.c.seq == 2).values(actor_orgnr=changed))
    assert audit.verify(engine) == ["pathway: row 2 was changed (its hash does not match)"]
