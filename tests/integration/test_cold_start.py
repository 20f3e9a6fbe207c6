"""Cold starts: every process of a service started at the same moment against a database that
has nothing yet — its server, its relay, its `migrate`, and for the pathway the projector —
comes up, again and again (PostgreSQL's catalogue once refused the second concurrent CREATE of
one table and a process exited; SQLite said "database is locked")."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

import psycopg

from shared.broker import Tenant
from tests.processes import STORES, Command, running, service_command, system_env

#: The processes of each service that start together (`migrate` among them, racing too).
SERVICES: dict[str, tuple[str, ...]] = {
    "referrals": ("serve", "relay", "migrate"),
    "admissions": ("serve", "relay", "migrate"),
    "discharges": ("serve", "relay", "migrate"),
    "medications": ("serve", "relay", "migrate"),
    "registry": ("serve", "relay", "migrate"),
    "pathway": ("serve", "project", "migrate"),
}


def commands(service: str) -> list[Command]:
    return [service_command(service, process) for process in SERVICES[service]]


def fresh_database(admin_url: str) -> str:
    name = f"carepath_cold_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_every_process_of_a_service_comes_up_together_on_a_fresh_postgres_twenty_times(
    postgres_admin_url: str, broker: Tenant, tmp_path: Path
) -> None:
    base = postgres_admin_url.rsplit("/", 1)[0]
    for round_, service in zip(range(20), itertools.cycle(SERVICES), strict=False):
        name = fresh_database(postgres_admin_url)
        try:
            url = f"{base}/{name}"
            urls = {store: url for store in STORES}
            workdir = tmp_path / f"round-{round_}"
            env = system_env(urls, broker, workdir)
            with running(commands(service), env, broker, workdir) as processes:
                assert all(p.alive() for p in processes if p.command.argv[-1] != "migrate")
        finally:
            drop_database(postgres_admin_url, name)


def test_every_process_of_a_service_comes_up_together_on_fresh_sqlite_files(
    broker: Tenant, tmp_path: Path
) -> None:
    for service in ("discharges", "pathway"):
        workdir = tmp_path / service
        workdir.mkdir()
        urls = {store: f"sqlite:///{workdir}/{store}.sqlite" for store in STORES}
        env = system_env(urls, broker, workdir)
        with running(commands(service), env, broker, workdir) as processes:
            assert all(p.alive() for p in processes if p.command.argv[-1] != "migrate")
