"""Process plumbing shared by every service entry point: logging and the relay process."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from shared import config
from shared.amqp import BatchPublisher
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
