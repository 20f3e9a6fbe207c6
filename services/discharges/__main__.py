"""Discharges service processes: `serve` (gRPC API), `relay` (outbox → RabbitMQ)
and `migrate` (its tables, once; docs/operations.md).

python -m services.discharges serve
python -m services.discharges relay
python -m services.discharges migrate
"""

from __future__ import annotations

from services.bootstrap import DISCHARGES
from shared.process import service_main


def main() -> None:
    service_main(DISCHARGES)


if __name__ == "__main__":
    main()
