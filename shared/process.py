"""Process plumbing shared by every service entry point: logging and the relay process."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from shared import config
from shared.amqp import BatchPublisher
from shared.grpc_server import start_server
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


def stop_event() -> threading.Event:
    """An event set by SIGTERM or SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def service_main(app_class: type[CarepathApplication], api: Any) -> None:
    """The entry point of every domain service: `python -m services.<name> serve|relay`.

    One composition root: the application on the store configured for the service, served by
    the shared gRPC bootstrap (`api.register`, `api.SERVICE_NAMES`) or relayed to RabbitMQ."""
    service = app_class.name
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}")
    parser.add_argument("process", choices=["serve", "relay"])
    args = parser.parse_args()
    setup_logging(f"{service}-{args.process}")
    app = app_class.from_url(config.database_url(service))
    if args.process == "relay":
        run_relay(app)
        return
    address = config.grpc_address(service)
    server = start_server(address, api.register(app), api.SERVICE_NAMES, config.jwt_secret())
    logging.getLogger(service).info("%s listening on %s", ", ".join(api.SERVICE_NAMES), address)
    server.wait_for_signal()


def run_relay(app: CarepathApplication) -> None:
    """Run the outbox relay of `app` until SIGTERM/SIGINT."""
    service = app.name
    url = config.database_url(service)
    positions = PositionStore(config.StoreSettings(url).relay_position_url(), f"{service}-amqp")
    relay = OutboxRelay(service, app, BatchPublisher(config.amqp_uri(), service), positions)
    log = logging.getLogger(f"{service}.relay")
    log.info("relaying %s events from position %d", service, relay.position)
    relay.run(stop_event())
    positions.close()
    log.info("stopped at position %d", relay.position)
