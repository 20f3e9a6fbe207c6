"""Discharges service processes: `serve` (gRPC API), `relay` (outbox → RabbitMQ)
and `migrate` (its tables, once; docs/operations.md).

python -m services.discharges serve
python -m services.discharges relay
python -m services.discharges migrate
"""

from __future__ import annotations

from services.discharges import api
from services.discharges.application import DischargesApplication
from shared.process import service_main


def main() -> None:
    service_main(DischargesApplication, api)


if __name__ == "__main__":
    main()
