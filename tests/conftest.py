"""Fixtures for the real parts: RabbitMQ, PostgreSQL and SQLite.

Tests that need the broker or PostgreSQL fail (never skip) when it is missing: `make test`
starts both through infra/ensure-*.sh first.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pika
import psycopg
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.actors import Actor, OrgKind
from shared.broker import Tenant
from tests.support import admin_uri, allow_test_data, open_tenant, recorded_spans

# The tests' patients are synthetic (tests.support.make_fnr: month + 80), which a process
# accepts only where test data is allowed: this session, as `make run` does, and through its
# environment every process a test starts. A test of a production process removes it.
allow_test_data()

TEST_VHOST = "carepath-test"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/carepath_test"


@pytest.fixture(scope="session")
def broker() -> Iterator[Tenant]:
    """A vhost of this test session's own, provisioned from infra/rabbitmq/definitions.json
    with service users of its own (`<random prefix><service>`), all deleted afterwards: another
    run on the same broker (a parallel session, `make run`) never sees this one's events or
    users, nor it theirs. The session's consumers expect its users (AMQP_USER_PREFIX)."""
    vhost = f"{TEST_VHOST}-{uuid.uuid4().hex[:8]}"
    try:
        tenant = open_tenant(vhost)
    except Exception as exc:
        pytest.fail(f"cannot provision RabbitMQ on 127.0.0.1 ({exc}); `make test` starts it")
    previous = os.environ.get("AMQP_USER_PREFIX")
    os.environ["AMQP_USER_PREFIX"] = tenant.prefix
    yield tenant
    if previous is None:
        os.environ.pop("AMQP_USER_PREFIX", None)
    else:
        os.environ["AMQP_USER_PREFIX"] = previous
    tenant.close()


@pytest.fixture(scope="session")
def amqp_uri(broker: Tenant) -> str:
    """The broker's administrator in this session's vhost: a test's own look at queues (and
    the forger's connection in the tests of the broker's trust)."""
    uri = admin_uri(broker)
    try:
        pika.BlockingConnection(pika.URLParameters(uri)).close()
    except Exception as exc:
        pytest.fail(f"RabbitMQ is not reachable at {uri} ({exc}); `make test` starts it")
    return uri


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    url = os.environ.get("CAREPATH_TEST_POSTGRES_URL", DEFAULT_PG)
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except Exception as exc:
        pytest.fail(f"PostgreSQL is not reachable at {url} ({exc}); `make test` starts it")
    return url


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"carepath_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = postgres_admin_url.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


STORES = (
    "referrals",
    "admissions",
    "discharges",
    "medications",
    "registry",
    "municipal",
    "correspondence",
    "pathway",
    "audit",
    "revocations",
)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> dict[str, str]:
    """Database URLs of each service's store and the pathway read model, on each backend
    (one database for all on PostgreSQL: eventsourcing names tables by application)."""
    if request.param == "sqlite":
        return {name: f"sqlite:///{tmp_path}/{name}.sqlite" for name in STORES}
    url = request.getfixturevalue("postgres_url")
    return {name: url for name in STORES}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans this test process ends during the test (the SDK's in-memory exporter)."""
    with recorded_spans() as exporter:
        yield exporter


GP = Actor(her_id="8134021", org_kind=OrgKind.GP, hpr="9144900")
OTHER_GP = Actor(her_id="8134099", org_kind=OrgKind.GP, hpr="7755003")
HOSPITAL = Actor(her_id="59", org_kind=OrgKind.HOSPITAL, hpr="4210953")
OTHER_HOSPITAL = Actor(her_id="90234", org_kind=OrgKind.HOSPITAL, hpr="5632187")
MUNICIPALITY = Actor(her_id="4201", org_kind=OrgKind.MUNICIPALITY, hpr="1203921")
OTHER_MUNICIPALITY = Actor(her_id="4301", org_kind=OrgKind.MUNICIPALITY, hpr="6611004")
