"""PostgreSQL over verified TLS: the `sslmode=verify-full&sslrootcert=...` of a DATABASE_URL
reaches both the event store (psycopg, through eventsourcing) and SQLAlchemy (read model,
positions, audit), on a throwaway TLS-only cluster with a throwaway CA."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from eventsourcing.persistence import OperationalError

from services.referrals.application import ReferralsApplication
from services.referrals.domain import Priority
from shared.config import StoreSettings, pool
from shared.domain import CommandContext
from shared.ids import FNR_SYSTEM
from shared.sql import engine
from tests.conftest import GP, HOSPITAL
from tests.support import events_in, make_fnr
from tests.tls import Authority, make_authority, tls_postgres

pytestmark = pytest.mark.postgres

SSL_IN_USE = sa.text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return make_authority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def server_url(authority: Authority) -> Iterator[str]:
    with tls_postgres(authority) as url:
        yield url


def verified(url: str, ca: Path) -> str:
    return f"{url}?sslmode=verify-full&sslrootcert={ca}"


def test_the_event_store_connects_with_verify_full_and_keeps_a_referral(
    server_url: str, authority: Authority
) -> None:
    app = ReferralsApplication.from_url(verified(server_url, authority.ca), pool("store-relay"))
    try:
        app.send_referral(
            CommandContext("tls-1", datetime.now(UTC), GP, "tls-1"),
            {"system": FNR_SYSTEM, "value": make_fnr(3, 4, 55, 200)},
            HOSPITAL.her_id,
            "Hoste og vekttap.",
            Priority.ROUTINE,
            None,
        )
        assert events_in(app) == 1
        with app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            assert conn.execute(SSL_IN_USE.text).fetchone()["ssl"] is True
    finally:
        app.close()


def test_sqlalchemy_connects_with_verify_full(server_url: str, authority: Authority) -> None:
    created = engine(verified(server_url, authority.ca))
    with created.connect() as conn:
        assert conn.execute(SSL_IN_USE).scalar() is True
    created.dispose()


def test_a_server_certificate_from_another_ca_is_refused_by_both(
    server_url: str, tmp_path: Path
) -> None:
    stranger = verified(server_url, make_authority(tmp_path / "other").ca)
    env = StoreSettings(stranger, pool("store-relay")).eventsourcing_env("referrals")
    with pytest.raises(OperationalError):  # its pool gives up after POSTGRES_CONNECT_TIMEOUT
        ReferralsApplication(env={**env, "POSTGRES_CONNECT_TIMEOUT": "3"})
    with pytest.raises(sa.exc.OperationalError, match="certificate verify failed"):
        engine(stranger).connect()


def test_a_plaintext_connection_is_refused_by_a_tls_only_server(server_url: str) -> None:
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"{server_url}?sslmode=disable", connect_timeout=5)
