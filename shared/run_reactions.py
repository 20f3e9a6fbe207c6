"""Entry point of the reaction processes: `nameko run` of one service's reactions module,
connected as that service's broker user (over TLS with an `amqps://` AMQP_URI and the
AMQP_TLS_* files, as every other process).

    python -m shared.run_reactions services.admissions.reactions

eventlet patches the standard library before anything else is imported (as `nameko run`
does), so this module is apart from shared.reactions.
"""

import eventlet  # type: ignore[import-untyped]

eventlet.monkey_patch()

import argparse  # noqa: E402
import logging  # noqa: E402

from nameko.cli.run import import_service, run  # noqa: E402
from nameko.constants import AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY  # noqa: E402

from shared import config, ops, reactions  # noqa: E402
from shared.process import start_process  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """`python -m shared.run_reactions services.<service>.reactions`: `nameko run` of the module,
    connected as the service's broker user, with JSON messages, the logs and traces of every process
    (shared.process.start_process)."""
    parser = argparse.ArgumentParser(prog="python -m shared.run_reactions")
    parser.add_argument("module", help="services.<service>.reactions")
    args = parser.parse_args(argv)
    service = args.module.split(".")[1]
    start_process(f"{service}-reactions")
    logging.getLogger(__name__).info("running %s", args.module)
    uri = config.amqp_uri(service)
    settings: dict[str, object] = {AMQP_URI_CONFIG_KEY: uri, "serializer": "json"}
    ssl = config.nameko_amqp_ssl(
        uri
    )  # an amqps:// AMQP_URI: the AMQP_TLS_* files, as kombu takes them
    if ssl:
        settings[AMQP_SSL_CONFIG_KEY] = ssl
    # Ready once every handler consumes its queue and the stores answer (they add their checks
    # as their containers start); the endpoint serves on a green thread beside nameko's.
    ops.OPS.check("consumers", reactions.consuming)
    ops.OPS.start(f"{service}-reactions")
    run(import_service(args.module), settings)


if __name__ == "__main__":
    main()
