"""Process plumbing shared by every service entry point: logging, `migrate`, and the relay
process."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from shared import bootstrap, config, ops, tracing
from shared.access.enforce import AccessControl
from shared.auth import TokenVerifier
from shared.bootstrap import DomainService
from shared.grpc_server import Server
from shared.retry import until_available
from shared.signals import stop_event
from shared.store import CarepathApplication


class JsonLogFormatter(JsonFormatter):
    """One JSON object per line: time (UTC, ISO 8601), level, process, logger, message, and
    where known trace_id / span_id (the current span, shared.tracing), command_id and
    correlation_id (the command being handled)."""

    def __init__(self, process: str) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={"process": process},
            timestamp="time",
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message)
        log_data.update(log_context())


class TextLogFormatter(logging.Formatter):
    """One readable line (`LOG_FORMAT=text`, which `make run` uses): time, process, level,
    logger, message, and the trace and command ids where known."""

    def __init__(self, process: str) -> None:
        super().__init__(f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = log_context()
        if not ids:
            return line
        return f"{line} [{' '.join(f'{k}={v}' for k, v in ids.items())}]"


def log_context() -> dict[str, str]:
    """The ids a log line carries besides its message: the current span's trace and span
    (shared.tracing) and the command being handled. Ids only, never personal data."""
    ids: dict[str, str] = {}
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        ids["trace_id"] = format(span.trace_id, "032x")
        ids["span_id"] = format(span.span_id, "016x")
    command = tracing.current_command()
    if command is not None:
        ids["command_id"], ids["correlation_id"] = command
    return ids


def setup_logging(process: str) -> None:
    """Every process's logs and traces (shared.tracing.setup): one JSON object per line on
    stderr (`LOG_FORMAT=json`, the default), or one readable line (`LOG_FORMAT=text`).
    Personal identifiers and clinical text are never logged at INFO: log ids of aggregates,
    events and commands, counts and states only."""
    try:
        text = config.log_format() == "text"
    except config.ConfigError as exc:
        sys.exit(f"carepath: {exc}")
    tracing.setup(process)
    handler = logging.StreamHandler(sys.stderr)
    if text:
        handler.setFormatter(TextLogFormatter(process))
    else:
        handler.setFormatter(JsonLogFormatter(process))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.log_level())
    logging.getLogger("pika").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def start_process(process: str) -> None:
    """What every process does first: its logs and traces (`setup_logging`), then the
    process-wide settings of the composition root: whether synthetic test identifiers are
    accepted (`bootstrap.test_data_policy`; refused unless `CAREPATH_TEST_DATA=allow`). A wrong
    setting: the process says why in one line and exits non-zero."""
    setup_logging(process)
    try:
        bootstrap.test_data_policy()
    except config.ConfigError as exc:
        sys.exit(f"carepath: {exc}")


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
    service: DomainService[Any],
    commands: dict[str, Callable[[Any, list[str]], None]] | None = None,
) -> None:
    """The entry point of every domain service: `python -m services.<name> serve|relay|migrate`
    (and the service's own `commands`, e.g. the registry's `import FILE`).

    The graph is built by the composition root (shared/bootstrap.py) from the service's
    configuration: the application on its store, served by the shared gRPC bootstrap behind
    the access policy and the audit log, or relayed to RabbitMQ. `migrate` creates the
    service's tables once (its event store, the relay's position, its own views) and exits;
    every other process creates what is missing too, under the schema lock, so none depends on
    `migrate` having run first. A store that cannot be reached yet is waited for, with
    back-off."""
    name = service.name
    commands = commands or {}
    parser = argparse.ArgumentParser(prog=f"python -m services.{name}")
    parser.add_argument("process", choices=["serve", "relay", "migrate", *commands])
    parser.add_argument("args", nargs="*")
    args, rest = parser.parse_known_args()
    if rest and args.process not in commands:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    start_process(f"{name}-{args.process}")
    log = logging.getLogger(name)
    # Each process's PostgreSQL pool is sized for its role (shared.config.POOLS).
    role = {"serve": "store-serve", "relay": "store-relay"}.get(args.process, "store-tool")
    app = bootstrap.application(service.application, role)
    if args.process == "relay":
        run_relay(app)
        return
    if args.process == "migrate":
        bootstrap.position_store(name).close()
        app.close()
        log.info("%s schema is current", name)
        return
    if args.process in commands:
        commands[args.process](app, [*args.args, *rest])
        return
    tokens = token_verifier()
    access = bootstrap.access_control(name, service.api.resolvers(app))
    address = config.grpc_address(name)
    server = bootstrap.grpc_server(app, service.api, access, tokens, address, server_tls())
    log.info("%s listening on %s", ", ".join(service.api.SERVICE_NAMES), address)
    ops.OPS.check("store", app.recorder.max_notification_id)
    follow_health(server, f"{name}-serve", access, tokens)
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
    """Run the outbox relay of `app` until SIGTERM/SIGINT; a lost database or broker is
    waited for, with back-off (shared.retry), never a reason to exit."""
    service = app.name
    log = logging.getLogger(f"{service}.relay")
    stop = stop_event()
    positions = until_available(
        lambda: bootstrap.position_store(service), log, "relay position", stop=stop
    )
    publisher = bootstrap.event_publisher(service)
    relay = until_available(
        lambda: bootstrap.outbox_relay(app, positions, publisher), log, "relay position", stop=stop
    )
    log.info("relaying %s events from position %d", service, relay.position)
    # Ready: the store's head is readable (it is the backlog gauge too), the position is
    # readable, and the publisher's connection is open (an idle relay keeps one open).
    ops.OPS.check("store", relay.backlog)
    ops.OPS.check("relay position", ops.database(positions.engine))
    ops.OPS.check("broker", lambda: publisher.connected)
    ops.OPS.start(f"{service}-relay")
    relay.run(stop)
    ops.OPS.stop()
    positions.close()
    log.info("stopped at position %d", relay.position)
