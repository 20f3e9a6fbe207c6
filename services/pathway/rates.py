"""The daily rates for utskrivningsklare pasienter as reference data: an operator adds a year's
rate (Helsedirektoratet publishes it each year) without a release, and GetPathway prices the
stored days with the table as it is when it answers — no rebuild, no restart.

    python -m services.pathway rates add --year 2025 --nok N --source "Helsedirektoratet, …"
    python -m services.pathway rates list

A rate is added once: a year that has one is refused (ALREADY_EXISTS), so a published rate is
never silently replaced. Every command is on the audit log, as a gRPC call is, with the
operator's HER-id (`--operator-her-id`).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.pathway import readmodel as rm
from services.pathway import views
from shared.access.enforce import AccessControl
from shared.access.model import Basis, Purpose
from shared.audit.log import Entry
from shared.errors import AlreadyExists, DomainError, InvalidArgument
from shared.ids import HerId, IdentifierError
from shared.times import utc_iso

#: The scheme began with the Samhandlingsreformen on 1 January 2012; a rate is published in the
#: autumn for the coming year, so no later year than next year can have one.
FIRST_YEAR = 2012
#: Far above any rate so far (5 745 NOK in 2024): a typo guard, not a rule.
MAX_DAILY_RATE_NOK = 100_000
MAX_SOURCE = 500

#: The operating organisation's HER-id the command line acts as by default (as the streams'
#: subscriptions command line): carepath's own organisation in the demo.
DEFAULT_OPERATOR_HER_ID = "112374"


def add_rate(
    engine: Engine, year: int, nok: int, source: str, operator_her_id: str, now: datetime
) -> None:
    """Add `year`'s daily rate; InvalidArgument for a value no rate can have, AlreadyExists
    when the year has one."""
    source = source.strip()
    if not FIRST_YEAR <= year <= now.year + 1:
        raise InvalidArgument("year", f"must be {FIRST_YEAR}–{now.year + 1}")
    if not 0 < nok <= MAX_DAILY_RATE_NOK:
        raise InvalidArgument("nok", f"must be 1–{MAX_DAILY_RATE_NOK} whole NOK per døgn")
    if not source or len(source) > MAX_SOURCE:
        raise InvalidArgument("source", f"is required (the publication), at most {MAX_SOURCE}")
    row = {
        "year": year,
        "daily_rate_nok": nok,
        "source": source,
        "added_by": operator_her_id,
        "added_at": utc_iso(now),
    }
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(rm.payment_rates).values(row))
    except sa.exc.IntegrityError as exc:
        raise AlreadyExists(f"{year} already has a daily rate", "year") from exc


def main(engine: Engine, argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.pathway rates")
    parser.add_argument("--operator-her-id", default=DEFAULT_OPERATOR_HER_ID)
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add a year's daily rate (once)")
    add.add_argument("--year", type=int, required=True)
    add.add_argument("--nok", type=int, required=True, help="whole NOK per døgn")
    add.add_argument("--source", required=True, help="where the rate is published")
    commands.add_parser("list", help="every year's rate with its source, as JSON lines")
    args = parser.parse_args(argv)
    try:
        operator = HerId.parse(args.operator_her_id).value
    except IdentifierError as exc:
        sys.exit(f"carepath: --operator-her-id: {exc}")

    access = AccessControl.from_config("pathway-rates")
    command_id = f"cli-{uuid.uuid4()}"
    outcome = "OK"
    try:
        if args.command == "add":
            add_rate(engine, args.year, args.nok, args.source, operator, datetime.now(UTC))
        for row in views.payment_rate_rows(engine):
            print(json.dumps(dict(row), ensure_ascii=False))
    except DomainError as exc:
        outcome = type(exc).__name__
        sys.exit(f"carepath: {exc}")
    finally:
        access.audit.record(
            [
                Entry(
                    at=utc_iso(datetime.now(UTC)),
                    request_id=command_id,
                    actor_her_id=operator,
                    actor_kind="REGISTRY",
                    actor_hpr=None,
                    patient_key=None,
                    call="PaymentRates/" + ("AddRate" if args.command == "add" else "ListRates"),
                    outcome=outcome,
                    basis=Basis.OPERATOR.value,
                    purpose=Purpose.REGISTER_MAINTENANCE.value,
                )
            ]
        )
        access.close()
