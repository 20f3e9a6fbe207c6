"""Streams service processes: `serve` (SubscriptionAdminService over gRPC), `deliver` (the
vendor delivery: every service's events → each subscription's queue), `stream` (the vendors'
EventStreamService, a grpc.aio server: services/streams/stream.py), `migrate` (its tables:
the subscriptions' event store and the stream log) and `subscriptions` (the operator's
command line).

python -m services.streams serve
python -m services.streams deliver
python -m services.streams stream
python -m services.streams migrate
python -m services.streams subscriptions create NAME --vendor-her-id H --purpose HEALTH_CARE \\
    --served 4201 [--event-type PatientAdmitted ...] [--source admissions ...] [--free-text] \\
    [--contract-version 2] [--notification-format FHIR_R5]
python -m services.streams subscriptions list [--include-deleted]
python -m services.streams subscriptions pause|resume|delete NAME

The command line acts as one of carepath's operators (`--operator-her-id`, the operating
organisation's HER-id) and puts every command on the audit log as the gRPC calls are.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import uuid
from datetime import UTC, datetime

from services.bootstrap import STREAMS
from services.streams import api, stream
from services.streams.application import StreamsApplication
from services.streams.delivery import Delivery
from services.streams.domain import NotificationFormat, Subscription
from services.streams.provisioning import VendorBroker
from services.streams.purposes import SubscriptionPurpose
from shared import bootstrap, config, ops
from shared.access.enforce import AccessControl
from shared.access.model import OPERATOR_ROLE, Basis, Purpose
from shared.actors import Actor, OrgKind
from shared.audit.log import Entry
from shared.domain import CommandContext
from shared.errors import DomainError
from shared.grpc_server import Failure
from shared.ids import HerId
from shared.process import follow_health, server_tls, service_main, token_verifier
from shared.retry import until_available
from shared.signals import stop_event
from shared.sql import engine
from shared.times import utc_iso

log = logging.getLogger("streams")

#: The operating organisation's HER-id the command line acts as (override with
#: --operator-her-id): the register adapter's, carepath's own organisation in the demo.
DEFAULT_OPERATOR_HER_ID = "112374"


def run_delivery(app: StreamsApplication, argv: list[str]) -> None:
    """Deliver until SIGTERM/SIGINT; a lost broker or database is waited for, with back-off."""
    stop = stop_event()
    access = until_available(lambda: AccessControl.from_config("streams-delivery"), log, "access")
    log_engine = engine(config.database_url("streams"), config.pool("stream-log"))
    delivery = Delivery(app, log_engine, access.facts, access.audit, config.amqp_uri("streams"))
    ops.OPS.check("store", app.recorder.max_notification_id)
    ops.OPS.check("stream log", ops.database(log_engine))
    ops.OPS.check("access facts", ops.database(access.facts.engine))
    ops.OPS.check("audit log", ops.database(access.audit.engine))
    ops.OPS.check("broker", lambda: delivery.consuming)
    ops.OPS.start("streams-deliver")
    delivery.run(stop)
    ops.OPS.stop()
    access.close()
    log_engine.dispose()
    app.close()


def run_stream(app: StreamsApplication, argv: list[str]) -> None:
    """Serve EventStreamService until SIGTERM/SIGINT (open streams get GRPC_GRACE_SECONDS)."""
    asyncio.run(_serve_stream(app))


async def _serve_stream(app: StreamsApplication) -> None:
    tokens = token_verifier()
    access = bootstrap.access_control("streams-stream", {})
    pool = config.pool("stream-serve")
    log_engine = engine(config.database_url("streams"), pool)
    settings = stream.StreamSettings(
        heartbeat=config.stream_heartbeat_seconds(),
        page=config.stream_page_size(),
        poll=config.stream_poll_seconds(),
    )
    address = config.grpc_address("streams_stream")
    grace = config.grpc_grace_seconds()
    served = await stream.start(
        app, log_engine, access, tokens, settings, address, pool.size, server_tls(),
        config.stream_max_open(),
    )  # fmt: skip
    log.info("EventStreamService listening on %s", address)
    ops.OPS.check("store", app.recorder.max_notification_id)
    ops.OPS.check("stream log", ops.database(log_engine))
    follow_health(served.server, "streams-stream", access, tokens)  # type: ignore[arg-type]
    await asyncio.to_thread(stop_event().wait)
    log.info("shutting down")
    await served.stop(grace)
    ops.OPS.stop()
    access.close()
    log_engine.dispose()
    app.close()


def _describe(s: Subscription, broker: VendorBroker) -> dict[str, object]:
    return {
        "name": s.name,
        "state": s.state.value,
        "vendor": s.vendor.as_dict(),
        "purpose": s.purpose.value,
        "event_types": list(s.event_types),
        "sources": list(s.sources),
        "served": [o.her_id for o in s.served],
        "free_text": s.free_text,
        "queue": s.queue,
        "broker_user": broker.user(s.name),
        "version": s.version,
        "contract_version": s.contract_version,
        "notification_format": s.notification_format.value,
    }


def run_subscriptions(app: StreamsApplication, argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.streams subscriptions")
    parser.add_argument("--operator-her-id", default=DEFAULT_OPERATOR_HER_ID)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a subscription and provision it")
    create.add_argument("name")
    vendor = create.add_mutually_exclusive_group(required=True)
    vendor.add_argument("--vendor-her-id", default="")
    vendor.add_argument("--vendor-orgnr", default="")
    create.add_argument("--purpose", required=True, choices=[p.value for p in SubscriptionPurpose])
    create.add_argument("--served", action="append", required=True, help="HER-id (repeatable)")
    create.add_argument("--event-type", action="append", default=[], help="(repeatable)")
    create.add_argument("--source", action="append", default=[], help="(repeatable)")
    create.add_argument("--free-text", action="store_true")
    create.add_argument(
        "--contract-version",
        type=int,
        default=0,
        help="the vendor contract version it receives (default: the current one)",
    )
    create.add_argument(
        "--notification-format",
        choices=[f.value for f in NotificationFormat],
        default=NotificationFormat.NATIVE.value,
        help="the native envelope (default) or FHIR R5 notifications (docs/fhir.md)",
    )
    listing = commands.add_parser("list", help="every subscription, as JSON lines")
    listing.add_argument("--include-deleted", action="store_true")
    for name in ("pause", "resume", "delete"):
        commands.add_parser(name).add_argument("name")
    args = parser.parse_args(argv)

    operator_her_id = HerId.parse(args.operator_her_id).value
    if operator_her_id not in config.operator_her_ids():
        sys.exit(
            f"carepath: {operator_her_id} is not one of carepath's operating organisations "
            "(OPERATOR_HER_IDS)"
        )
    operator = Actor(
        her_id=operator_her_id,
        org_kind=OrgKind.REGISTRY,
        roles=frozenset({OPERATOR_ROLE}),
    )
    access = until_available(lambda: AccessControl.from_config("streams-cli"), log, "access")
    broker = VendorBroker()
    subscriptions = api.Subscriptions(app, api.Directory(access.facts), broker)
    command_id = f"cli-{uuid.uuid4()}"
    ctx = CommandContext(command_id, datetime.now(UTC), operator, command_id)
    method = {
        "create": "CreateSubscription",
        "list": "ListSubscriptions",
        "pause": "PauseSubscription",
        "resume": "ResumeSubscription",
        "delete": "DeleteSubscription",
    }[args.command]
    outcome = "OK"
    try:
        if args.command == "create":
            subscription, password = subscriptions.create(
                ctx, args.name, args.vendor_her_id, args.vendor_orgnr,
                SubscriptionPurpose(args.purpose), args.event_type, args.source, args.served,
                args.free_text, args.contract_version,
                NotificationFormat(args.notification_format),
            )  # fmt: skip
            print(json.dumps({**_describe(subscription, broker), "broker_password": password}))
            print(
                "carepath: the broker password is shown this once; hand it to the vendor",
                file=sys.stderr,
            )
        elif args.command == "list":
            for s in app.subscriptions(args.include_deleted):
                print(json.dumps(_describe(s, broker)))
        else:
            change = getattr(subscriptions, args.command)
            print(json.dumps(_describe(change(ctx, args.name), broker)))
    except (DomainError, Failure) as exc:
        outcome = type(exc).__name__
        sys.exit(f"carepath: {exc}")
    finally:
        access.audit.record(
            [
                Entry(
                    at=utc_iso(datetime.now(UTC)),
                    request_id=command_id[:64],
                    actor_her_id=operator.her_id,
                    actor_kind=operator.org_kind.value,
                    actor_hpr=None,
                    patient_key=None,
                    call=f"SubscriptionAdminService/{method}",
                    outcome=outcome,
                    basis=Basis.OPERATOR.value,
                    purpose=Purpose.ACCESS_MANAGEMENT.value,
                )
            ]
        )
        access.close()
        app.close()


def main() -> None:
    service_main(
        STREAMS,
        {"deliver": run_delivery, "stream": run_stream, "subscriptions": run_subscriptions},
    )


if __name__ == "__main__":
    main()
