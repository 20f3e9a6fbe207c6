"""Process plumbing shared by every service entry point: logging and the relay process."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from shared import config, ops
from shared.access.enforce import AccessControl
from shared.amqp import BatchPublisher
from shared.auth import TokenVerifier
from shared.grpc_server import Server, start_server
from shared.outbox import OutboxRelay, PositionStore
from shared.store import CarepathApplication


def setup_logging(process: str) -> None:
    """Plain one-line logs to stderr. Personal identifiers and clinical text are never logged
    at INFO: log ids of aggregates and events, counts and states only."""
    logging.basicConfig(
        level=config.log_level(),
        stream=sys.stderr,
        format=f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pika").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def stop_event() -> threading.Event:
    """An event set by SIGTERM or SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def token_verifier() -> TokenVerifier:
    """The process's token verifier, from its configured issuer; without one (or with an
    unsafe key) the process says why in one line and exits non-zero."""
    try:
        return TokenVerifier.from_config()
    except config.ConfigError as exc:
        sys.exit(f"carepath: {exc}")


def server_tls() -> config.ServerTLS | None:
    """The gRPC server's TLS (`GRPC_TLS_*`); half set or naming a missing file, the process
    says why in one line and exits non-zero."""
    try:
        return config.grpc_server_tls()
    except config.ConfigError as exc:
        sys.exit(f"carepath: {exc}")


def service_main(
    app_class: type[CarepathApplication],
    api: Any,
    commands: dict[str, Callable[[Any, list[str]], None]] | None = None,
) -> None:
    """The entry point of every domain service: `python -m services.<name> serve|relay` (and
    the service's own `commands`, e.g. the registry's `import FILE`).

    One composition root: the application on the store configured for the service, served by
    the shared gRPC bootstrap (`api.register`, `api.SERVICE_NAMES`) behind the access policy
    and the audit log (`api.resolvers` finds the patient of a referral, stay or discharge),
    or relayed to RabbitMQ."""
    service = app_class.name
    commands = commands or {}
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}")
    parser.add_argument("process", choices=["serve", "relay", *commands])
    parser.add_argument("args", nargs="*")
    args, rest = parser.parse_known_args()
    if rest and args.process not in commands:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    setup_logging(f"{service}-{args.process}")
    # A relay reads one batch at a time: one connection (PostgreSQL's are few).
    connections = 1 if args.process == "relay" else 8
    app = app_class.from_url(config.database_url(service), connections)
    if args.process == "relay":
        run_relay(app)
        return
    if args.process in commands:
        commands[args.process](app, [*args.args, *rest])
        return
    tokens = token_verifier()
    access = AccessControl.from_config(service, api.resolvers(app))
    address = config.grpc_address(service)
    server = start_server(
        address,
        api.register(app, access),
        api.SERVICE_NAMES,
        tokens,
        access,
        tls=server_tls(),
    )
    logging.getLogger(service).info("%s listening on %s", ", ".join(api.SERVICE_NAMES), address)
    ops.OPS.check("store", app.recorder.max_notification_id)
    follow_health(server, f"{service}-serve", access, tokens)
    server.wait_for_signal()
    ops.OPS.stop()
    access.close()


def follow_health(
    server: Server, process: str, access: AccessControl, tokens: TokenVerifier
) -> None:
    """Check the server's databases in the background (its store is checked already; here
    the access facts, the audit log and the revocation list) and set its gRPC health from
    them: NOT_SERVING while one is unreachable, SERVING when all answer. Serves OPS_PORT."""
    ops.OPS.check("access facts", ops.database(access.facts.engine))
    ops.OPS.check("audit log", ops.database(access.audit.engine))
    ops.OPS.check("revocations", ops.database(tokens.revocations.engine))
    ops.OPS.on_change(server.set_serving)
    ops.OPS.start(process)


def run_relay(app: CarepathApplication) -> None:
    """Run the outbox relay of `app` until SIGTERM/SIGINT."""
    service = app.name
    url = config.database_url(service)
    positions = PositionStore(config.StoreSettings(url).relay_position_url(), f"{service}-amqp")
    publisher = BatchPublisher(config.amqp_uri(service), service)
    relay = OutboxRelay(service, app, publisher, positions)
    log = logging.getLogger(f"{service}.relay")
    log.info("relaying %s events from position %d", service, relay.position)
    # Ready: the store's head is readable (it is the backlog gauge too), the position is
    # readable, and the publisher's connection is open (an idle relay keeps one open).
    ops.OPS.check("store", relay.backlog)
    ops.OPS.check("relay position", positions.get)
    ops.OPS.check("broker", lambda: publisher.connected)
    ops.OPS.start(f"{service}-relay")
    relay.run(stop_event())
    ops.OPS.stop()
    positions.close()
    log.info("stopped at position %d", relay.position)
