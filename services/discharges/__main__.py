"""Discharges service processes: `serve` (gRPC API) and `relay` (outbox → RabbitMQ).

python -m services.discharges serve
python -m services.discharges relay
"""

from __future__ import annotations

import argparse
import logging

from services.discharges import api
from services.discharges.application import DischargesApplication
from shared import config
from shared.grpc_server import start_server
from shared.process import run_relay, setup_logging

SERVICE = "discharges"


def build_application() -> DischargesApplication:
    """The composition root: the application on the configured store."""
    return DischargesApplication.from_url(config.database_url(SERVICE))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.discharges")
    parser.add_argument("process", choices=["serve", "relay"])
    args = parser.parse_args()
    setup_logging(f"{SERVICE}-{args.process}")
    app = build_application()
    if args.process == "relay":
        run_relay(app)
        return
    address = config.grpc_address(SERVICE)
    server = start_server(address, api.register(app), api.SERVICE_NAMES, config.jwt_secret())
    logging.getLogger(SERVICE).info("DischargeService listening on %s", address)
    server.wait_for_signal()


if __name__ == "__main__":
    main()
