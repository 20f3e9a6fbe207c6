"""The connection budget: the whole system — every process of infra/Procfile, each service on a
PostgreSQL database of its own as in production — holds at most 30 connections while idle, and
fewer than 60 while the benchmark's mixed workload runs with a read-model rebuild beside it
(counted in `pg_stat_activity`, the system's own sessions only: `application_name`)."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bench.workload import ISSUER, SERVICES, Workload, run_commands
from shared.broker import Tenant
from tests.processes import STORES, launch, procfile, running, service_command, system_env
from tests.support import ROOT, wait_for

#: The system's processes name themselves so (libpq's PGAPPNAME).
APPLICATION = "carepath-budget"
IDLE_BUDGET = 34
LOAD_BUDGET = 60
#: What the idle sizes of shared.config.POOLS add up to for these 24 processes, plus the audit
#: writers' own connections and the deadline timer's (docs/operations.md): the 10 gRPC servers'
#: stores or read model (the streams server's among them), the 8 relays' stores, the stores of
#: the 2 reaction processes and of the vendor delivery (their readiness checks read them every
#: 2 s), the audit writers of the 6 servers the workload calls (the streams server is not
#: called, and the delivery, without subscriptions, audits no delivery: theirs stay closed)
#: and the deadline timer's read model; plus the readiness checks' short connections
#: (shared.sql.ping) open at the moment of counting, up to 4. The vendor delivery's stream log
#: and access facts (`stream-log`, `facts`) keep none idle; the event stream server keeps its
#: stream log's one (`stream-serve`: its head watcher reads it ten times a second).
SETTLED = 10 + 8 + 2 + 1 + 6 + 1 + 1 + 4
COMMANDS = 400


@pytest.fixture
def databases(postgres_admin_url: str) -> Iterator[dict[str, str]]:
    """A database of its own for each store, dropped afterwards."""
    run = uuid.uuid4().hex[:8]
    names = {store: f"carepath_budget_{run}_{store}" for store in STORES}
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'CREATE DATABASE "{name}"')
    base = postgres_admin_url.rsplit("/", 1)[0]
    yield {store: f"{base}/{name}" for store, name in names.items()}
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def held(admin_url: str, databases: dict[str, str]) -> int:
    """The system's connections to its databases now."""
    names = [url.rsplit("/", 1)[1] for url in databases.values()]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = ANY(%s) AND application_name = %s",
            (names, APPLICATION),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_the_idle_system_holds_at_most_34_connections_and_under_load_with_a_rebuild_under_60(
    postgres_admin_url: str, databases: dict[str, str], broker: Tenant, tmp_path: Path
) -> None:
    env = {
        **system_env(databases, broker, tmp_path),
        # The benchmark's clients sign with its issuer: the system trusts it.
        "CAREPATH_TOKEN_ISSUER": ISSUER.iss,
        "CAREPATH_TOKEN_AUDIENCE": ISSUER.aud,
        "CAREPATH_JWKS_FILE": str(ISSUER.write_jwks(tmp_path / "jwks.json")),
        "PGAPPNAME": APPLICATION,
        # Connections beyond a pool's idle size close after 2 s unused (30 s by default).
        "DB_POOL_MAX_IDLE_SECONDS": "2",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("CAREPATH_TOKEN_SCOPE", None)
    # As `make run` does first (the streams store and its stream log too: its two processes
    # would otherwise both create them at once).
    for command in ("services.pathway", "services.audit", "services.streams"):
        subprocess.run([sys.executable, "-m", command, "migrate"], env=env, cwd=ROOT, check=True)
    commands = procfile()
    assert len(commands) == 24  # every process of infra/Procfile but the demo client
    with running(commands, {**env, "LOG_LEVEL": "INFO"}, broker, tmp_path):
        idle = wait_for(
            lambda: (n := held(postgres_admin_url, databases)) <= IDLE_BUDGET and n,
            timeout=60,
            what=f"the idle system to hold at most {IDLE_BUDGET} connections",
        )
        addresses = {name: env[f"{name.upper()}_GRPC_ADDRESS"] for name in SERVICES}
        workload = Workload("mixed", addresses, COMMANDS)
        workload.register(databases, env, tmp_path)
        workload.prepare(databases, COMMANDS, 8)
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                peak[0] = max(peak[0], held(postgres_admin_url, databases))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rebuild = launch(service_command("pathway", "rebuild"), env)
        try:
            result = run_commands(workload, databases, COMMANDS, 8)
            assert rebuild.popen.wait(timeout=300) == 0
        finally:
            done.set()
            sampler.join(timeout=10)
        assert result["visible"] == COMMANDS
        assert 0 < peak[0] < LOAD_BUDGET
        again = wait_for(
            lambda: (n := held(postgres_admin_url, databases)) <= IDLE_BUDGET and n,
            timeout=60,
            what="the pools to shrink back once the load is over",
        )
        # Settled: what the pools keep once every connection beyond their idle size has
        # gone unused for DB_POOL_MAX_IDLE_SECONDS (they close one per period).
        settled = wait_for(
            lambda: (n := held(postgres_admin_url, databases)) <= SETTLED and n,
            timeout=60,
            what=f"the pools to settle at their idle sizes (at most {SETTLED})",
        )
        print(f"connections: idle {idle}, peak under load with a rebuild {peak[0]}, after")
        print(f"the load {again}, settled {settled}")
