"""Times as carepath stores them: normalised UTC ISO strings ('YYYY-MM-DDTHH:MM:SS.ffffffZ'),
so SQLite and PostgreSQL sort them identically and a rebuild is byte-for-byte the same; and
calendar dates of the registers as the Oslo days they mean."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

#: Norway's time zone: the calendar days of deadlines, payments and registers are Oslo days.
OSLO = ZoneInfo("Europe/Oslo")


#: A time in UTC as text, normalised or as isoformat writes it (from year 1000 on: strftime
#: writes earlier years short): its date and time, its fraction (6 digits) if any.
_UTC_TEXT = re.compile(r"([1-9]\d{3}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{6})?(?:Z|\+00:00)")


def utc_iso(value: str | datetime) -> str:
    """Normalise a timestamp to 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (sortable as text).

    Called for every time of every event the projector and a rebuild store, so the common
    cases take a short way to the same text: a string already in UTC (normalised, or as
    isoformat writes a UTC time) is checked to be a real moment and rewritten as text; a
    datetime from year 1000 on is written by isoformat, cheaper than strftime."""
    if isinstance(value, str):
        utc = _UTC_TEXT.fullmatch(value)
        if utc is not None:
            datetime.fromisoformat(value)  # refuses an impossible date or time as before
            return f"{utc[1]}{utc[2] or '.000000'}Z"
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if value.year < 1000:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def day_start(day: date) -> str:
    """The first moment of a calendar day in Norway, as a stored time."""
    return utc_iso(datetime.combine(day, time.min, OSLO))


def day_after(day: date) -> str:
    """The first moment after a calendar day in Norway (an inclusive last day's bound)."""
    return day_start(day + timedelta(days=1))
