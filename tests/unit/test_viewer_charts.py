"""The statistics page's charts are pure geometry from the Statistics reply: a column per
month, its value written on it, a suppressed month drawn as a placeholder labelled ":" and said
so in the chart's description (never its number)."""

from __future__ import annotations

from carepath.v1 import pathway_pb2
from services.viewer import charts


def month(m: int, days: int = 0, suppressed: bool = False) -> pathway_pb2.MonthStatistics:
    return pathway_pb2.MonthStatistics(
        month=pathway_pb2.YearMonth(year=2026, month=m),
        waiting_days=pathway_pb2.WaitingDaysStatistics(days=days, suppressed=suppressed),
    )


def test_a_suppressed_month_is_a_placeholder_and_its_number_is_nowhere() -> None:
    reply = pathway_pb2.StatisticsResponse(
        months=[month(1, days=40), month(2, suppressed=True), month(3, days=10)]
    )
    days, messages, cancer = charts.charts(reply)
    jan, feb, mar = days.columns
    assert (jan.value, feb.value, mar.value) == ("40 døgn", ":", "10 døgn")
    assert feb.suppressed and "skjult" in feb.title
    assert feb.height >= jan.height > mar.height > 0  # the placeholder fills the plot
    assert jan.y + jan.height == mar.y + mar.height == days.baseline
    assert "Høyest januar 2026 (40 døgn), lavest mars 2026 (10 døgn)" in days.description
    assert "1 måned(er) er skjult" in days.description
    assert [g.label for g in days.gridlines] == ["0", "10", "20", "30", "40"]
    # no message sent and no pathway treated: nothing to measure, not 0 %
    assert {c.value for c in messages.columns} == {"ingen"}
    assert cancer.target is not None and cancer.target.label == "Mål 70\u00a0%"


def test_an_empty_range_has_a_description_too() -> None:
    (days, _, _) = charts.charts(pathway_pb2.StatisticsResponse())
    assert days.columns == [] and days.description.endswith("ingen måneder valgt.")
