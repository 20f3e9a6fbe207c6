"""Process plumbing shared by every service entry point: logging and the relay process."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from shared import config, tracing
from shared.access.enforce import AccessControl
from shared.amqp import BatchPublisher
from shared.auth import TokenVerifier
from shared.grpc_server import start_server
from shared.outbox import OutboxRelay, PositionStore
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
    server.wait_for_signal()
    access.close()


def run_relay(app: CarepathApplication) -> None:
    """Run the outbox relay of `app` until SIGTERM/SIGINT."""
    service = app.name
    url = config.database_url(service)
    positions = PositionStore(config.StoreSettings(url).relay_position_url(), f"{service}-amqp")
    relay = OutboxRelay(service, app, BatchPublisher(config.amqp_uri(service), service), positions)
    log = logging.getLogger(f"{service}.relay")
    log.info("relaying %s events from position %d", service, relay.position)
    relay.run(stop_event())
    positions.close()
    log.info("stopped at position %d", relay.position)
