"""Admissions service processes: `serve` (gRPC API), `relay` (outbox → RabbitMQ)
and `migrate` (its tables, once; docs/operations.md).

python -m services.admissions serve
python -m services.admissions relay
python -m services.admissions migrate
"""

from __future__ import annotations

from services.admissions import api
from services.admissions.application import AdmissionsApplication
from shared.process import service_main


def main() -> None:
    service_main(AdmissionsApplication, api)


if __name__ == "__main__":
    main()
