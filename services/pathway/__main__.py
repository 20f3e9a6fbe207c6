"""Pathway processes: `project` (RabbitMQ → read model), `serve` (PathwayService over gRPC),
`migrate` (schema to the newest revision, then every patient without a current fold state
folded once), `rebuild` (read model from the services' stores), `rates` (the operator's daily
rates for utskrivningsklare pasienter: services/pathway/rates.py).

    python -m services.pathway project|serve|migrate|rebuild
    python -m services.pathway rates add --year 2025 --nok N --source "…" | rates list
"""

from __future__ import annotations

import argparse
import logging
import os

from services.pathway import api, migrate, rates, readmodel
from services.pathway.projector import QUEUE, Projector, refold_stale
from services.pathway.rebuild import rebuild
from shared import amqp, bootstrap, config, ops
from shared.process import follow_health, server_tls, start_process, token_verifier
from shared.retry import until_available
from shared.signals import stop_event
from shared.store import CarepathApplication

SERVICE = "pathway"
log = logging.getLogger(SERVICE)


def source_stores() -> dict[str, CarepathApplication]:
    """The domain services' stores, for rebuilds (each at its configured URL). Only a rebuild
    reads them: the other pathway processes do not load the domain services."""
    from services.bootstrap import DOMAIN_SERVICES

    return {
        name: bootstrap.application(service.application, "store-tool")
        for name, service in DOMAIN_SERVICES.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.pathway")
    parser.add_argument("process", choices=["project", "serve", "migrate", "rebuild", "rates"])
    args, rest = parser.parse_known_args()
    if rest and args.process != "rates":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    start_process(f"{SERVICE}-{args.process}")
    # Each process's PostgreSQL pool is sized for its role (shared.config.POOLS).
    role = {"serve": "serve", "project": "project"}.get(args.process, "tool")
    engine = readmodel.create_engine(config.database_url(SERVICE), role)
    until_available(lambda: migrate.upgrade(engine), log, "read model")
    if args.process == "migrate":
        log.info("read model schema is current")
        # After a migration that adds tables, or a change of the fold (codec.FORMAT): the
        # patients without a current fold state, folded once from their stored events.
        stale = refold_stale(engine)
        if stale:
            log.info("folded %d patients again from their stored events", stale)
    elif args.process == "rates":
        rates.main(engine, rest)
    elif args.process == "rebuild":
        count = rebuild(engine, source_stores())
        log.info("rebuilt the read model from %d events", count)
    elif args.process == "project":
        # Another partition of the projector's queue: `pathway.projector.<name>` (the names the
        # pathway's broker user may consume), declared and bound by the operator.
        queue = os.environ.get("PATHWAY_QUEUE", QUEUE)
        uri = config.amqp_uri(SERVICE)
        projector = Projector(engine, uri, queue=queue)
        ops.OPS.check("read model", ops.database(engine))
        ops.OPS.check("consumer", lambda: projector.consuming)
        ops.OPS.watch_queues(uri, dead_letters=[amqp.DEAD_LETTER_QUEUE], projector=queue)
        ops.OPS.start("pathway-project")
        projector.run(stop_event())
        ops.OPS.stop()
    else:
        address = config.grpc_address(SERVICE)
        tokens = token_verifier()
        access = bootstrap.access_control(SERVICE, api.resolvers(engine))
        server = bootstrap.grpc_server(engine, api, access, tokens, address, server_tls())
        log.info("PathwayService listening on %s", address)
        ops.OPS.check("read model", ops.database(engine))
        follow_health(server, "pathway-serve", access, tokens)
        server.wait_for_signal()
        ops.OPS.stop()
        access.close()


if __name__ == "__main__":
    main()
