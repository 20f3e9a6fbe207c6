"""Referrals service processes: `serve` (gRPC API) and `relay` (outbox → RabbitMQ).

python -m services.referrals serve
python -m services.referrals relay
"""

from __future__ import annotations

from services.referrals import api
from services.referrals.application import ReferralsApplication
from shared.process import service_main


def main() -> None:
    service_main(ReferralsApplication, api)


if __name__ == "__main__":
    main()
