"""Entry point of the reaction processes: `nameko run` of one service's reactions module,
connected as that service's broker user.

    python -m shared.run_reactions services.admissions.reactions

eventlet patches the standard library before anything else is imported (as `nameko run`
does), so this module is apart from shared.reactions.
"""

import eventlet  # type: ignore[import-untyped]

eventlet.monkey_patch()

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

from nameko.cli.run import import_service, run  # noqa: E402
from nameko.constants import AMQP_URI_CONFIG_KEY  # noqa: E402

from shared import config  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """`python -m shared.run_reactions services.<service>.reactions`: `nameko run` of the module,
    connected as the service's broker user, with JSON messages and one-line logs."""
    parser = argparse.ArgumentParser(prog="python -m shared.run_reactions")
    parser.add_argument("module", help="services.<service>.reactions")
    args = parser.parse_args(argv)
    service = args.module.split(".")[1]
    logging.basicConfig(
        level=config.log_level(),
        stream=sys.stderr,
        format=f"%(asctime)s {service}-reactions %(levelname)s %(name)s: %(message)s",
    )
    settings = {AMQP_URI_CONFIG_KEY: config.amqp_uri(service), "serializer": "json"}
    run(import_service(args.module), settings)


if __name__ == "__main__":
    main()
