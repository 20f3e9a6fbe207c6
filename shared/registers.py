"""Periods of register facts, read the same way by the registry service (its answers) and the
pathway's fold (the care relationships the access policy decides on): one pure reading.

- Residence and fastlege follow each other: a record runs from its first day until the day
  before the next record starts (or its own last day, when it has one).
- Temporary residences (opphold) are periods of their own; recording one again with the same
  municipality and first day corrects it (e.g. gives its end).
For every kind, a later record with the same first day replaces the earlier one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True, slots=True)
class Record:
    """One recorded register fact, in the order it was recorded."""

    her_id: str
    valid_from: date
    valid_to: date | None = None  # last day, inclusive
    hpr: str | None = None


@dataclass(frozen=True, slots=True)
class Period:
    her_id: str
    valid_from: date
    valid_to: date | None  # last day, inclusive; None while it runs
    hpr: str | None = None

    def holds_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


def successive(records: Iterable[Record]) -> list[Period]:
    """Residence or fastlege periods, oldest first."""
    by_start: dict[date, Record] = {}
    for record in records:  # a later record with the same first day replaces the earlier
        by_start[record.valid_from] = record
    ordered = [by_start[day] for day in sorted(by_start)]
    periods = []
    for i, r in enumerate(ordered):
        ends = [r.valid_to] if r.valid_to else []
        if i + 1 < len(ordered):
            ends.append(ordered[i + 1].valid_from - timedelta(days=1))
        periods.append(Period(r.her_id, r.valid_from, min(ends) if ends else None, r.hpr))
    return periods


def separate(records: Iterable[Record]) -> list[Period]:
    """Temporary residence periods, oldest first."""
    by_key: dict[tuple[str, date], Record] = {}
    for record in records:
        by_key[(record.her_id, record.valid_from)] = record
    return [
        Period(r.her_id, r.valid_from, r.valid_to, r.hpr)
        for r in sorted(by_key.values(), key=lambda r: (r.valid_from, r.her_id))
    ]
