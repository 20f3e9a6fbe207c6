"""Admissions service processes: `serve` (gRPC API), `relay` (outbox → RabbitMQ)
and `migrate` (its tables, once; docs/operations.md).

python -m services.admissions serve
python -m services.admissions relay
python -m services.admissions migrate
"""

from __future__ import annotations

from services.bootstrap import ADMISSIONS
from shared.process import service_main


def main() -> None:
    service_main(ADMISSIONS)


if __name__ == "__main__":
    main()
