"""Deadlines and money from the rules in rules.toml (data with cited sources), shared by
every service that needs them (admissions, discharges, the pathway).

Pure functions: working days come from the `holidays` package (Norwegian public holidays),
never from a hand-kept list.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import holidays

from shared.times import OSLO

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


def add_working_days(start: date, days: int) -> date:
    """The `days`-th working day after `start` (start itself not counted)."""
    return _norway().get_nth_working_day(start, days)


def end_of_day(day: date) -> datetime:
    """The last moment of a calendar day in Europe/Oslo (deadlines run to the day's end)."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), OSLO) - timedelta(
        microseconds=1
    )


def referral_assessment_days(serious_illness_suspected: bool = False) -> int:
    """Working days the hospital has to assess a referral: fewer when serious or
    life-threatening illness is suspected (an urgent referral, a cancer pathway)."""
    table = rules()["referral_assessment"]
    if serious_illness_suspected:
        table = table["serious_illness_suspected"]
    return int(table["working_days"])


def referral_assessment_due(
    received_at: datetime, serious_illness_suspected: bool = False
) -> datetime:
    """When the hospital must have assessed a referral received at `received_at` (the end of
    the Oslo day of the last working day)."""
    days = referral_assessment_days(serious_illness_suspected)
    received_day = received_at.astimezone(OSLO).date()
    return end_of_day(add_working_days(received_day, days))


def referral_resend_due(rejected_at: datetime) -> datetime:
    """When the GP office should have corrected and resent a referral whose receipt was
    REJECTED (end of the Oslo day of the last working day)."""
    days = int(rules()["referral_resend"]["working_days"])
    return end_of_day(add_working_days(rejected_at.astimezone(OSLO).date(), days))


def health_information_due(admitted_at: datetime) -> datetime:
    return admitted_at + timedelta(hours=int(rules()["health_information"]["hours"]))


def readiness_answer_due(ready_at: datetime) -> datetime:
    return ready_at + timedelta(hours=int(rules()["readiness_answer"]["hours"]))


def correspondence_answer_due(asked_at: datetime) -> datetime:
    """When a Forespørsel between municipality and GP sent at `asked_at` must be answered."""
    days = int(rules()["correspondence_answer"]["working_days"])
    return end_of_day(add_working_days(asked_at.astimezone(OSLO).date(), days))


def receipt_due(sent_at: datetime) -> datetime:
    return sent_at + timedelta(hours=int(rules()["message_receipt"]["hours"]))


#: The cancer-pathway milestones in the order they are reached (the keys of rules.toml;
#: milestone and treatment names are taken in either case).
CANCER_MILESTONES = ("first_appointment", "investigation_completed", "treatment_start")


def _cancer_limits(pathway: str) -> dict[str, Any]:
    table = rules()["cancer_pathways"]
    if pathway not in table:
        raise MissingRule(f"no time limits for cancer pathway {pathway!r}")
    return dict(table[pathway])


def cancer_treatments(pathway: str) -> list[str]:
    """The first treatments the pathway has a standard time for (lower case, e.g. "surgery")."""
    return sorted(_cancer_limits(pathway)["treatment_start"])


def cancer_segment_days(pathway: str, milestone: str, treatment: str | None = None) -> int:
    """Standard calendar days of the segment that ends at `milestone`. The segments are
    consecutive: receipt → first appointment → investigation completed → treatment start, and
    the treatment segment depends on the first treatment chosen."""
    limits = _cancer_limits(pathway)
    milestone, treatment = milestone.lower(), treatment.lower() if treatment else None
    if milestone not in CANCER_MILESTONES:
        raise MissingRule(f"no cancer-pathway milestone {milestone!r}")
    limit = limits[milestone]
    if isinstance(limit, dict):
        if treatment not in limit:
            raise MissingRule(f"no standard time to start {treatment!r} in pathway {pathway!r}")
        return int(limit[treatment])
    return int(limit)


def cancer_segment_due(
    pathway: str, milestone: str, segment_start: datetime, treatment: str | None = None
) -> datetime:
    """End of the Oslo day by which `milestone` is due: the segment's standard days counted in
    calendar days from the day the segment started (the referral's receipt for the first
    appointment, the previous milestone for the others), as Helsedirektoratet measures each
    forløpstid."""
    day = segment_start.astimezone(OSLO).date()
    days = cancer_segment_days(pathway, milestone, treatment)
    return end_of_day(day + timedelta(days=days))


def cancer_total_days(pathway: str, treatment: str) -> int:
    """The pathway's standard total in calendar days from the referral received to the start
    of `treatment` ("fra henvisning mottatt til start behandling"), as Helsedirektoratet
    measures a pathway."""
    totals = _cancer_limits(pathway).get("total", {})
    if treatment.lower() not in totals:
        raise MissingRule(f"no standard total to start {treatment!r} in pathway {pathway!r}")
    return int(totals[treatment.lower()])


def cancer_elapsed_days(started_at: datetime, treatment_started_at: datetime) -> int:
    """Calendar days from the pathway's start to the treatment's start, counted between their
    Oslo dates (the day of receipt is day 0)."""
    start = started_at.astimezone(OSLO).date()
    return (treatment_started_at.astimezone(OSLO).date() - start).days


def cancer_target_share() -> float:
    """The national target: the share of measured pathways within their standard total."""
    return float(rules()["cancer_pathways"]["target_share"])


def cancer_pathway_end_reasons() -> list[str]:
    """The coded reasons a cancer pathway may end without treatment (pakkeforløp slutt)."""
    return list(rules()["cancer_pathway_end"]["reasons"])


def medication_reconciliation_due(discharged_at: datetime) -> datetime:
    """When the fastlege's reconciliation of the medication list is due after a discharge
    (the end of that Oslo day)."""
    days = int(rules()["medication_reconciliation"]["days_after_discharge"])
    return end_of_day(discharged_at.astimezone(OSLO).date() + timedelta(days=days))


def published_rates() -> dict[int, int]:
    """The daily rates rules.toml holds (NOK per døgn by year): the seed of the read model's
    payment_rates table, where an operator adds later years without a release."""
    rates = rules()["discharge_payment"]["daily_rate_nok"]
    return {int(year): int(nok) for year, nok in rates.items()}


def daily_rate(year: int, rates: Mapping[int, int] | None = None) -> int:
    """The rate of `year` in `rates` (rules.toml's when None); MissingRule when it has none."""
    known = published_rates() if rates is None else rates
    if year not in known:
        raise MissingRule(str(rules()["discharge_payment"]["unpublished_reason"]).format(year=year))
    return known[year]


@dataclass(frozen=True)
class PaymentDays:
    """Days the municipality pays for, split by calendar year, and the amount."""

    days_by_year: dict[int, int]
    amount_nok: int

    @property
    def days(self) -> int:
        return sum(self.days_by_year.values())


def days_by_year(first: date, until: date) -> dict[int, int]:
    """The calendar days from `first` up to, not including, `until`, counted per year."""
    by_year: dict[int, int] = {}
    day = first
    while day < until:
        by_year[day.year] = by_year.get(day.year, 0) + 1
        day += timedelta(days=1)
    return by_year


def payment_days(
    ready_on: date, received_on: date, rates: Mapping[int, int] | None = None
) -> PaymentDays:
    """A patient ready on `ready_on` and received by the municipality on `received_on` costs
    one døgn for each day from the ready day up to, not including, the day received (ready on
    Friday, received on Tuesday: Friday–Monday, 4 days), each at its own year's rate (from
    `rates`, rules.toml's when None; MissingRule when a year has none)."""
    by_year = days_by_year(ready_on, received_on)
    amount = sum(daily_rate(year, rates) * n for year, n in by_year.items())
    return PaymentDays(by_year, amount)


def payment_until(ready_on: date, ends_on: date | None, today: date) -> date:
    """The first day not paid of a readiness period: its end once known; while it runs, the
    day after today, for today's døgn counts (rules.toml [discharge_payment.counting])."""
    if ends_on is not None:
        return ends_on
    return max(today + timedelta(days=1), ready_on)


def admission_notice_due(admitted_at: datetime) -> datetime:
    """When the admission notice (and the status and course it carries, in PLO terms the first
    Helseopplysninger) is due for a patient expected to need municipal services."""
    hours = rules()["discharge_payment"]["conditions"]["admission_notice"]["hours"]
    return admitted_at + timedelta(hours=int(hours))


def readiness_notice_content() -> dict[str, str]:
    """The content a readiness notice must carry for the duty to pay: item → Norwegian name,
    in the order the rules list them."""
    notice = rules()["discharge_payment"]["conditions"]["readiness_notice"]
    return {item: str(notice["names"][item]) for item in notice["required"]}
