"""Medications service processes: `serve` (gRPC API), `relay` (outbox → RabbitMQ)
and `migrate` (its tables, once; docs/operations.md).

python -m services.medications serve
python -m services.medications relay
python -m services.medications migrate
"""

from __future__ import annotations

from services.medications import api
from services.medications.application import MedicationsApplication
from shared.process import service_main


def main() -> None:
    service_main(MedicationsApplication, api)


if __name__ == "__main__":
    main()
