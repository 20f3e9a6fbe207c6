"""Municipal service processes: `serve` (gRPC API), `relay` (outbox → RabbitMQ) and `migrate`
(its tables, once; docs/operations.md).

python -m services.municipal serve
python -m services.municipal relay
python -m services.municipal migrate
"""

from __future__ import annotations

from services.bootstrap import MUNICIPAL
from shared.process import service_main


def main() -> None:
    service_main(MUNICIPAL)


if __name__ == "__main__":
    main()
