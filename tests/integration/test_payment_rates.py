"""The daily rates as reference data in the read model, on each backend: seeded from
rules.toml by the migration, added by an operator once per year (refused values change
nothing), kept by a rebuild, and used by GetPathway's read (views) as they are now."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.pathway import rates, readmodel, views
from services.pathway.projector import project
from services.pathway.rebuild import rebuild
from shared import rules
from shared.errors import AlreadyExists, InvalidArgument
from tests.unit.test_payment_rules import IN_TIME, ready, stay

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def rates_now(engine: Engine) -> dict[int, int]:
    with engine.connect() as conn:
        return views.payment_rates(conn)


def test_the_migration_seeds_the_published_rates_with_their_source(engine: Engine) -> None:
    assert rates_now(engine) == rules.published_rates()
    (first, *_) = views.payment_rate_rows(engine)
    assert (first["year"], first["added_by"]) == (2014, "rules.toml")
    assert "Helsedirektoratet" in first["source"]


def test_an_operator_adds_a_years_rate_once(engine: Engine) -> None:
    rates.add_rate(engine, 2025, 6100, "Helsedirektoratet, døgnpris 2025", "112374", NOW)
    assert rates_now(engine)[2025] == 6100
    with pytest.raises(AlreadyExists, match="2025"):
        rates.add_rate(engine, 2025, 9999, "a second thought", "112374", NOW)
    assert rates_now(engine)[2025] == 6100
    (added,) = [r for r in views.payment_rate_rows(engine) if r["year"] == 2025]
    assert added["added_by"] == "112374"


@pytest.mark.parametrize(
    ("year", "nok", "source", "field"),
    [
        (2011, 4000, "x", "year"),  # before the scheme
        (2028, 6500, "x", "year"),  # not published before the autumn of the year before
        (2027, 0, "x", "nok"),
        (2027, 1_000_000, "x", "nok"),
        (2027, 6500, "  ", "source"),
    ],
)
def test_a_rate_no_year_can_have_is_refused_and_nothing_is_stored(
    engine: Engine, year: int, nok: int, source: str, field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        rates.add_rate(engine, year, nok, source, "112374", NOW)
    assert refused.value.field == field
    assert rates_now(engine) == rules.published_rates()


def test_a_rebuild_keeps_the_rates_the_operator_added(engine: Engine) -> None:
    rates.add_rate(engine, 2026, 6300, "Helsedirektoratet, døgnpris 2026", "112374", NOW)
    rebuild(engine, {})
    assert rates_now(engine)[2026] == 6300


def test_the_projector_stores_why_a_period_is_not_payable(engine: Engine) -> None:
    with engine.begin() as conn:
        project(conn, [*stay(None, IN_TIME), ready(functional_level=None)])
    with engine.connect() as conn:
        (row,) = conn.execute(sa.select(readmodel.payments)).mappings()
    assert row["not_payable"] == "ADMISSION_NOTICE_MISSING,READINESS_NOTICE_INCOMPLETE"
    assert row["missing_content"] == "functional_level"
