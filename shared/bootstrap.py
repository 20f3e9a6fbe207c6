"""The composition root: how a service's parts are built and wired together, the one place both
the processes (`python -m services.<name>`, shared.process.service_main, the nameko
reactions' providers) and the tests build them.

A service's graph, from its configuration (shared.config) or a test's own URLs:
- its application on its event store (`application`), or the pathway's read model;
- the access policy and the audit log in front of every call (`access_control`);
- its gRPC servicer(s), registered on the shared server bootstrap (`grpc_server`):
  health, reflection, the token verifier, the policy, the audit log, error mapping;
- its outbox relay to RabbitMQ, from the position it keeps (`outbox_relay`).

What each domain service is made of (its application class and its gRPC api module) is named
once, in services/bootstrap.py. Nothing here opens a connection at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from shared import config, ids
from shared.access.enforce import AccessControl, Resolver
from shared.amqp import BatchPublisher
from shared.auth import TokenVerifier
from shared.config import ServerTLS, StoreSettings
from shared.grpc_server import DEFAULT_MAX_WORKERS, Server, start_server
from shared.outbox import OutboxRelay, PositionStore, Publisher
from shared.retry import until_available
from shared.store import CarepathApplication

log = logging.getLogger(__name__)

A = TypeVar("A", bound=CarepathApplication)


class Api(Protocol):
    """A service's gRPC api module (services/<name>/api.py) as the root sees it: what it
    serves, how it registers its servicer(s) on a server, and how the access policy finds the
    patient of a resource it names. `target` is the application (or the read model)."""

    @property
    def SERVICE_NAMES(self) -> Sequence[str]: ...

    def register(self, target: Any, access: AccessControl) -> Any: ...

    def resolvers(self, target: Any) -> Mapping[str, Resolver]: ...


@dataclass(frozen=True)
class DomainService(Generic[A]):
    """What a domain service is made of: its application (event store, commands) and its gRPC
    api module. services/bootstrap.py names each one."""

    application: type[A]
    api: Api

    @property
    def name(self) -> str:
        return self.application.name


def test_data_policy(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process accepts synthetic test identifiers (shared.ids), from its
    configuration (`CAREPATH_TEST_DATA`, `config.test_data_allowed`), applied once for the whole
    process: every process at its start (shared.process.start_process), a test session at its
    start (tests/conftest.py). Returns the setting; says so at WARNING when test data is
    allowed, since no production process should. Raises ConfigError for a wrong value."""
    allowed = config.test_data_allowed(environ)
    ids.allow_synthetic_numbers(allowed)
    if allowed:
        log.warning("synthetic test identifiers are accepted (CAREPATH_TEST_DATA=allow)")
    return allowed


def application(app_class: type[A], role: str = "store-serve", url: str | None = None) -> A:
    """`app_class` on its store: at `url`, by default its configured one
    (`config.database_url`), with the PostgreSQL pool of the process's `role`
    (shared.config.POOLS); its tables created if missing. A store that cannot be reached yet
    is waited for, with back-off."""
    where = url or config.database_url(app_class.name)
    return until_available(
        lambda: app_class.from_url(where, config.pool(role)), log, f"{app_class.name} store"
    )


def access_control(
    service: str, resolvers: Mapping[str, Resolver], shared: AccessControl | None = None
) -> AccessControl:
    """The access policy and audit log in front of `service`'s calls, with the service's
    `resolvers`: its own facts and audit log as configured (`ACCESS_DATABASE_URL`,
    `AUDIT_DATABASE_URL`; waited for), or `shared`'s (several servers in one process)."""
    if shared is not None:
        return shared.for_service(resolvers)
    return until_available(
        lambda: AccessControl.from_config(service, resolvers), log, "access facts"
    )


def grpc_server(
    target: Any,
    api: Api,
    access: AccessControl,
    tokens: TokenVerifier,
    address: str,
    tls: ServerTLS | None = None,
) -> Server:
    """`api`'s servicer(s) over `target` (the application, or the read model), started on
    `address` ("host:port"; port 0 picks a free one) by the shared server bootstrap, every
    call authenticated by `tokens` and passing `access`; TLS with `tls`; as many worker threads
    as the api module's `MAX_WORKERS` when it names them."""
    return start_server(
        address,
        api.register(target, access),
        api.SERVICE_NAMES,
        tokens,
        access,
        max_workers=getattr(api, "MAX_WORKERS", DEFAULT_MAX_WORKERS),
        tls=tls,
    )


def position_store(service: str, url: str | None = None) -> PositionStore:
    """The relay position of `service`, kept beside its store (at `url`, by default its
    configured one); its table created if missing."""
    settings = StoreSettings(url or config.database_url(service))
    return PositionStore(settings.relay_position_url(), f"{service}-amqp")


def event_publisher(service: str, amqp_uri: str | None = None) -> BatchPublisher:
    """The publisher of `service`'s events to its exchange, as the service's broker user (at
    `amqp_uri`, by default `config.amqp_uri(service)`), batched with confirms."""
    return BatchPublisher(amqp_uri or config.amqp_uri(service), service)


def outbox_relay(
    app: CarepathApplication,
    positions: PositionStore,
    publisher: Publisher | None = None,
    **options: int,
) -> OutboxRelay:
    """The outbox relay of `app`: its notification log published from `positions` by
    `publisher` (by default the service's own, `event_publisher(app.name)`); `options`
    (batch_size) as OutboxRelay takes them."""
    return OutboxRelay(app.name, app, publisher or event_publisher(app.name), positions, **options)
