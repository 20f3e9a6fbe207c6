"""Stored times: `utc_iso` writes every moment as the one sortable text, whatever form it
came in, and its short ways (a text already normalised, isoformat) write exactly what the
long way (parse, convert, strftime) writes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.times import utc_iso


def _long_way(value: str | datetime) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_every_form_of_a_moment_is_stored_as_the_same_text() -> None:
    pick = random.Random(7)
    for _ in range(5000):
        moment = datetime(1000, 1, 2, tzinfo=UTC) + timedelta(
            seconds=pick.uniform(0, 3.2e10), microseconds=pick.choice((0, pick.randrange(10**6)))
        )
        offset = timezone(timedelta(minutes=pick.choice((0, 60, 120, -300, 330))))
        local = moment.astimezone(offset)
        forms = (
            local,
            local.replace(tzinfo=None),
            local.isoformat(),
            moment.isoformat(),
            _long_way(local),
        )
        for form in forms:
            assert utc_iso(form) == _long_way(form)


def test_a_normalised_text_is_stored_as_it_is() -> None:
    assert utc_iso("2025-12-31T23:00:00.000000Z") == "2025-12-31T23:00:00.000000Z"
    assert utc_iso("2026-01-01T00:00:00+01:00") == "2025-12-31T23:00:00.000000Z"
    assert utc_iso("2025-12-31T23:00:00+00:00") == "2025-12-31T23:00:00.000000Z"
    assert utc_iso("2025-12-31T23:00:00.5+00:00") == "2025-12-31T23:00:00.500000Z"


@pytest.mark.parametrize(
    "text",
    ["2025-13-01T00:00:00.000000Z", "2025-02-30T08:00:00.000000Z", "2025-02-29T08:00:00+00:00"],
)
def test_an_impossible_moment_is_refused_even_in_the_normalised_form(text: str) -> None:
    with pytest.raises(ValueError):
        utc_iso(text)
