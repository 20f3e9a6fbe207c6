"""A municipality's monthly numbers, the pure part: the calendar months asked for (in Oslo
time), the rule on small numbers (rules.toml [statistics]) and what a suppressed figure shows.

The counting itself is SQL over the read model, one query per measure (services/pathway/
views.py: `waiting_days`, `messages_answered`, `cancer_pathways_treated`); this module knows
nothing of SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Protocol, TypeVar

from shared import rules
from shared.errors import InvalidArgument
from shared.times import OSLO, utc_iso


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month in Europe/Oslo."""

    year: int
    month: int

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    @property
    def starts_at(self) -> str:
        """The month's first moment in Oslo, as the read model stores times (UTC ISO)."""
        return utc_iso(datetime.combine(self.first_day, time.min, OSLO))

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def small_count_threshold() -> int:
    """A figure resting on at least one and fewer than this many patients is suppressed."""
    return int(rules.rules()["statistics"]["small_count_threshold"])


def months_at_most() -> int:
    return int(rules.rules()["statistics"]["months_at_most"])


def month_range(first: Month, last: Month, today: date) -> list[Month]:
    """Every month from `first` to `last`, both included; INVALID_ARGUMENT naming the field
    when the range is backwards, longer than rules.toml allows, or reaches past this month."""
    if last < first:
        raise InvalidArgument("to_month", "must not be before from_month")
    if last > Month.of(today):
        raise InvalidArgument("to_month", "must not be after the current month")
    months = [first]
    while months[-1] < last:
        months.append(months[-1].next())
    if len(months) > months_at_most():
        raise InvalidArgument(
            "to_month", f"must be at most {months_at_most()} months after from_month"
        )
    return months


class Cell(Protocol):
    """A month's figure of one measure: how many patients it rests on."""

    @property
    def patients(self) -> int: ...


C = TypeVar("C", bound=Cell)


def suppressed(cell: C, empty: C, threshold: int) -> tuple[C, bool]:
    """The cell as it may be shown: itself, or — resting on 1 to threshold-1 patients — the
    empty cell (every count 0) and True. A true zero identifies no one and is shown."""
    if 0 < cell.patients < threshold:
        return empty, True
    return cell, False
