"""Medications service processes: `serve` (gRPC API), `relay` (outbox → RabbitMQ)
and `migrate` (its tables, once; docs/operations.md).

python -m services.medications serve
python -m services.medications relay
python -m services.medications migrate
"""

from __future__ import annotations

from services.bootstrap import MEDICATIONS
from shared.process import service_main


def main() -> None:
    service_main(MEDICATIONS)


if __name__ == "__main__":
    main()
