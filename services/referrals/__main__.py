"""Referrals service processes: `serve` (gRPC API), `relay` (outbox → RabbitMQ)
and `migrate` (its tables, once; docs/operations.md).

python -m services.referrals serve
python -m services.referrals relay
python -m services.referrals migrate
"""

from __future__ import annotations

from services.bootstrap import REFERRALS
from shared.process import service_main


def main() -> None:
    service_main(REFERRALS)


if __name__ == "__main__":
    main()
