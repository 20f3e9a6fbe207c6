"""Times as carepath stores them: normalised UTC ISO strings ('YYYY-MM-DDTHH:MM:SS.ffffffZ'),
so SQLite and PostgreSQL sort them identically and a rebuild is byte-for-byte the same; and
calendar dates of the registers as the Oslo days they mean."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

#: Norway's time zone: the calendar days of deadlines, payments and registers are Oslo days.
OSLO = ZoneInfo("Europe/Oslo")


def utc_iso(value: str | datetime) -> str:
    """Normalise a timestamp to 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (sortable as text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def day_start(day: date) -> str:
    """The first moment of a calendar day in Norway, as a stored time."""
    return utc_iso(datetime.combine(day, time.min, OSLO))


def day_after(day: date) -> str:
    """The first moment after a calendar day in Norway (an inclusive last day's bound)."""
    return day_start(day + timedelta(days=1))
