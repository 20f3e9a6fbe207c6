"""Deadlines and money from the rules in rules.toml (data with cited sources), shared by
every service that needs them (admissions, discharges, the pathway).

Pure functions: working days come from the `holidays` package (Norwegian public holidays),
never from a hand-kept list.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays

OSLO = ZoneInfo("Europe/Oslo")
RULES_FILE = Path(__file__).with_name("rules.toml")


class MissingRule(LookupError):
    """A rule the data does not have (e.g. the daily rate of an unpublished year)."""


@cache
def rules() -> dict[str, Any]:
    with RULES_FILE.open("rb") as f:
        return tomllib.load(f)


@cache
def _norway() -> holidays.HolidayBase:
    return holidays.country_holidays("NO", language="no")


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in _norway()


def add_working_days(start: date, days: int) -> date:
    """The `days`-th working day after `start` (start itself not counted)."""
    return _norway().get_nth_working_day(start, days)


def end_of_day(day: date) -> datetime:
    """The last moment of a calendar day in Europe/Oslo (deadlines run to the day's end)."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), OSLO) - timedelta(
        microseconds=1
    )


def referral_assessment_due(received_at: datetime) -> datetime:
    """When the hospital must have assessed a referral received at `received_at`."""
    days = int(rules()["referral_assessment"]["working_days"])
    received_day = received_at.astimezone(OSLO).date()
    return end_of_day(add_working_days(received_day, days))


def health_information_due(admitted_at: datetime) -> datetime:
    return admitted_at + timedelta(hours=int(rules()["health_information"]["hours"]))


def readiness_answer_due(ready_at: datetime) -> datetime:
    return ready_at + timedelta(hours=int(rules()["readiness_answer"]["hours"]))


def receipt_due(sent_at: datetime) -> datetime:
    return sent_at + timedelta(hours=int(rules()["message_receipt"]["hours"]))


@dataclass(frozen=True)
class CancerMilestone:
    name: str  # first_appointment | investigation_completed
    due: datetime


def cancer_pathway_milestones(pathway: str, received_at: datetime) -> list[CancerMilestone]:
    """Due times of the pathway's first segments, counted in calendar days from receipt.
    (Treatment start depends on the chosen treatment and is left to the hospital's plan.)"""
    table = rules()["cancer_pathways"]
    if pathway not in table:
        raise MissingRule(f"no time limits for cancer pathway {pathway!r}")
    limits = table[pathway]
    day = received_at.astimezone(OSLO).date()
    first = day + timedelta(days=int(limits["first_appointment"]))
    done = first + timedelta(days=int(limits["investigation_completed"]))
    return [
        CancerMilestone("first_appointment", end_of_day(first)),
        CancerMilestone("investigation_completed", end_of_day(done)),
    ]


def daily_rate(year: int) -> int:
    rates = rules()["discharge_payment"]["daily_rate_nok"]
    if str(year) not in rates:
        raise MissingRule(f"no daily rate for utskrivningsklare pasienter in {year}")
    return int(rates[str(year)])


@dataclass(frozen=True)
class PaymentDays:
    """Days the municipality pays for, split by calendar year, and the amount."""

    days_by_year: dict[int, int]
    amount_nok: int

    @property
    def days(self) -> int:
        return sum(self.days_by_year.values())


def payment_days(ready_on: date, received_on: date) -> PaymentDays:
    """A patient ready on `ready_on` and received by the municipality on `received_on` costs
    one day for each day from the ready day up to, not including, the day received (ready on
    Friday, received on Tuesday: Friday–Monday, 4 days), each at its own year's rate."""
    by_year: dict[int, int] = {}
    day = ready_on
    while day < received_on:
        by_year[day.year] = by_year.get(day.year, 0) + 1
        day += timedelta(days=1)
    amount = sum(daily_rate(year) * n for year, n in by_year.items())
    return PaymentDays(by_year, amount)
