"""Deadlines and payment from the rules as data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shared import rules


def test_a_patient_ready_on_friday_and_received_on_tuesday_costs_four_days() -> None:
    cost = rules.payment_days(date(2024, 3, 1), date(2024, 3, 5))
    assert cost.days == 4
    assert cost.amount_nok == 4 * 5745


def test_payment_days_over_new_year_use_each_years_rate() -> None:
    cost = rules.payment_days(date(2023, 12, 30), date(2024, 1, 3))
    assert cost.days_by_year == {2023: 2, 2024: 2}
    assert cost.amount_nok == 2 * 5508 + 2 * 5745


def test_a_year_without_a_published_rate_is_an_explicit_error() -> None:
    with pytest.raises(rules.MissingRule, match="2031"):
        rules.payment_days(date(2031, 1, 1), date(2031, 1, 2))


def test_received_the_same_day_costs_nothing() -> None:
    assert rules.payment_days(date(2024, 5, 2), date(2024, 5, 2)).amount_nok == 0


def test_a_referral_received_the_day_before_easter_is_due_after_the_easter_holidays() -> None:
    # Received Saturday 4 April 2026; Easter Sunday/Monday are holidays: 10 working days
    # are 7–10, 13–17 and 20 April.
    due = rules.referral_assessment_due(datetime(2026, 4, 4, 10, 0, tzinfo=UTC))
    assert due.date() == date(2026, 4, 20)
    assert (due.hour, due.minute) == (23, 59)


def test_assessment_deadline_skips_may_holidays() -> None:
    # Received Wednesday 29 April 2026: 1 May (Fri), 14 May (Ascension) are not working days.
    due = rules.referral_assessment_due(datetime(2026, 4, 29, 12, 0, tzinfo=UTC))
    assert due.date() == date(2026, 5, 15)


def test_colorectal_segments_count_calendar_days_from_the_segment_start() -> None:
    received = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
    first = rules.cancer_segment_due("COLORECTAL", "first_appointment", received)
    assert first.date() == date(2026, 9, 10)
    seen = datetime(2026, 9, 8, 9, 0, tzinfo=UTC)  # seen two days early: the next segment starts
    done = rules.cancer_segment_due("COLORECTAL", "investigation_completed", seen)
    assert done.date() == date(2026, 9, 20)
    radio = rules.cancer_segment_due("COLORECTAL", "treatment_start", done, "radiotherapy")
    assert radio.date() == date(2026, 10, 8)


def test_the_treatment_segment_needs_a_treatment_the_pathway_has_a_standard_for() -> None:
    assert rules.cancer_treatments("LYMPHOMA") == ["drugs", "radiotherapy"]
    with pytest.raises(rules.MissingRule):
        rules.cancer_segment_days("LYMPHOMA", "treatment_start", "surgery")


def test_every_rule_cites_its_source() -> None:
    data = rules.rules()
    for section in ("referral_assessment", "health_information", "discharge_payment"):
        assert data[section]["source"]
    assert data["cancer_pathways"]["source"]


def test_a_referral_suspecting_serious_illness_is_assessed_in_fewer_working_days() -> None:
    # Received Wednesday 29 April 2026: 3 working days are 30 April, 4 May (1 May is a
    # holiday, then the weekend) and 5 May; the ordinary 10 run to 15 May.
    received = datetime(2026, 4, 29, 12, 0, tzinfo=UTC)
    assert rules.referral_assessment_days(True) < rules.referral_assessment_days(False)
    assert rules.referral_assessment_due(received, serious_illness_suspected=True).date() == date(
        2026, 5, 5
    )
    assert rules.referral_assessment_due(received).date() == date(2026, 5, 15)
    assert rules.rules()["referral_assessment"]["serious_illness_suspected"]["source"]


@pytest.mark.parametrize("pathway", ["BREAST", "COLORECTAL", "LYMPHOMA"])
def test_each_standard_total_is_the_sum_of_its_segments(pathway: str) -> None:
    """Helsedirektoratet publishes the totals ("fra henvisning mottatt til start behandling");
    in each pathway they are the sums of the three segments."""
    for treatment in rules.cancer_treatments(pathway):
        segments = sum(
            rules.cancer_segment_days(pathway, m, treatment if m == "treatment_start" else None)
            for m in rules.CANCER_MILESTONES
        )
        assert rules.cancer_total_days(pathway, treatment) == segments


def test_the_colorectal_totals_are_helsedirektoratets() -> None:
    assert rules.cancer_total_days("COLORECTAL", "SURGERY") == 35
    assert rules.cancer_total_days("COLORECTAL", "drugs") == 35
    assert rules.cancer_total_days("COLORECTAL", "radiotherapy") == 39
    with pytest.raises(rules.MissingRule):
        rules.cancer_total_days("LYMPHOMA", "surgery")


def test_a_pathways_days_are_counted_between_oslo_dates() -> None:
    received = datetime(2026, 9, 1, 21, 30, tzinfo=UTC)  # 23:30 in Oslo, 1 September
    started = datetime(2026, 10, 5, 22, 30, tzinfo=UTC)  # 00:30 in Oslo, 6 October
    assert rules.cancer_elapsed_days(received, started) == 35


def test_the_gps_reconciliation_is_due_days_after_the_discharge_and_cites_its_source() -> None:
    due = rules.medication_reconciliation_due(datetime(2026, 3, 6, 12, 0, tzinfo=UTC))
    days = rules.rules()["medication_reconciliation"]["days_after_discharge"]
    assert due.date() == date(2026, 3, 6) + timedelta(days=days)
    assert "documented default" in rules.rules()["medication_reconciliation"]["source"]
    assert rules.cancer_pathway_end_reasons() == [
        "CANCER_NOT_CONFIRMED",
        "PATIENT_DECLINED",
        "PATIENT_DIED",
        "OTHER",
    ]
