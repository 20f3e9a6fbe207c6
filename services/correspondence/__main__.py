"""Correspondence service processes: `serve` (gRPC API), `relay` (outbox → RabbitMQ)
and `migrate` (its tables, once; docs/operations.md).

python -m services.correspondence serve
python -m services.correspondence relay
python -m services.correspondence migrate
"""

from __future__ import annotations

from services.bootstrap import CORRESPONDENCE
from shared.process import service_main


def main() -> None:
    service_main(CORRESPONDENCE)


if __name__ == "__main__":
    main()
