"""The statistics page's charts: one column chart per measure, month by month, drawn on the
server as SVG (no script). Pure geometry from the PathwayService/Statistics reply; the template
(`_chart.html`) only places what `column_chart` returns.

Accessible by construction: each chart has a title and a description saying what it shows and
its highest and lowest month, each column its own tooltip title and its value written above it
(colour is never the only carrier), a suppressed month a hatched placeholder labelled ":" with
"skjult" in its title, and the same numbers are also in the page's table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from carepath.v1 import pathway_pb2
from services.viewer.present import MONTHS, SHORT_MONTHS, kroner

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 20, 36
#: The sign of a suppressed figure (SSB's "cannot be published").
SUPPRESSED = ":"


@dataclass(frozen=True)
class Column:
    x: float
    y: float
    width: float
    height: float
    month: str  # short label under the column
    value: str  # written above the column
    title: str  # the column's own tooltip and accessible name
    suppressed: bool


@dataclass(frozen=True)
class Gridline:
    y: float
    label: str


@dataclass
class Chart:
    ident: str
    title: str
    description: str
    width: int = WIDTH
    height: int = HEIGHT
    columns: list[Column] = field(default_factory=list)
    gridlines: list[Gridline] = field(default_factory=list)
    #: A target drawn as a dashed line (e.g. 70 % of cancer pathways within standard).
    target: Gridline | None = None
    baseline: float = HEIGHT - BOTTOM


def month_name(m: pathway_pb2.YearMonth, short: bool = False) -> str:
    names = SHORT_MONTHS if short else MONTHS
    return f"{names[m.month - 1]} {m.year}"


def percent(share: float) -> str:
    return f"{round(share * 100)}\u00a0%"


def _nice_top(highest: float) -> float:
    """A round top for a count axis at or above `highest`, in four round steps of at least
    one (0–4, 0–8, 0–10, 0–20, 0–40, …)."""
    scale = 1.0
    while True:
        for step in (1.0, 2.0, 2.5, 5.0):
            if step * scale * 4 >= highest:
                return step * scale * 4
        scale *= 10


@dataclass(frozen=True)
class Point:
    """One month of a measure: its value (None: suppressed or nothing to measure) and how it
    is written."""

    month: pathway_pb2.YearMonth
    value: float | None
    text: str
    suppressed: bool


def column_chart(
    ident: str,
    title: str,
    what: str,
    points: Sequence[Point],
    axis: Callable[[float], str],
    top: float | None = None,
    target: tuple[float, str] | None = None,
) -> Chart:
    """Columns of `points` on a value axis from 0 to `top` (None: a round number above the
    highest value), labelled by `axis`; `what` names the measure in the description."""
    shown = [p for p in points if p.value is not None and not p.suppressed]
    highest = max((p.value or 0.0 for p in shown), default=0.0)
    top = top or _nice_top(highest)
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(points), 1)
    chart = Chart(ident, title, _description(what, points, shown))
    for i in range(5):
        chart.gridlines.append(Gridline(TOP + plot_h * (1 - i / 4), axis(top * i / 4)))
    if target is not None:
        chart.target = Gridline(TOP + plot_h * (1 - target[0] / top), target[1])
    for i, p in enumerate(points):
        x = LEFT + slot * i + slot * 0.15
        width = slot * 0.7
        if p.suppressed:  # a hatched band the plot's height: no value, never mistaken for one
            height, written = float(plot_h), SUPPRESSED
            title_text = f"{month_name(p.month)}: skjult (for få pasienter til å vise tallet)"
        else:
            height = plot_h * min((p.value or 0.0) / top, 1.0)
            written = p.text
            title_text = f"{month_name(p.month)}: {p.text}"
        chart.columns.append(
            Column(
                x=round(x, 1),
                y=round(TOP + plot_h - height, 1),
                width=round(width, 1),
                height=round(height, 1),
                month=month_name(p.month, short=True),
                value=written,
                title=title_text,
                suppressed=p.suppressed,
            )
        )
    return chart


def _description(what: str, points: Sequence[Point], shown: Sequence[Point]) -> str:
    if not points:
        return f"{what}: ingen måneder valgt."
    span = f"{month_name(points[0].month)} til {month_name(points[-1].month)}"
    text = f"{what} per måned, {span}."
    if shown:
        high = max(shown, key=lambda p: p.value or 0.0)
        low = min(shown, key=lambda p: p.value or 0.0)
        if high.value == low.value:
            text += f" Alle viste måneder: {high.text}."
        else:
            text += f" Høyest {month_name(high.month)} ({high.text})"
            text += f", lavest {month_name(low.month)} ({low.text})."
    hidden = sum(1 for p in points if p.suppressed)
    if hidden:
        text += f" {hidden} måned(er) er skjult fordi tallet bygger på for få pasienter."
    return text


def charts(reply: pathway_pb2.StatisticsResponse) -> list[Chart]:
    """The page's three charts."""
    months = list(reply.months)
    days = [
        Point(m.month, float(m.waiting_days.days), f"{m.waiting_days.days} døgn",
              m.waiting_days.suppressed)
        for m in months
    ]  # fmt: skip
    answered = [
        Point(
            m.month,
            m.messages.share_in_time if _measured(m.messages) else None,
            percent(m.messages.share_in_time) if _measured(m.messages) else "ingen",
            m.messages.suppressed,
        )
        for m in months
    ]
    cancer = [
        Point(
            m.month,
            m.cancer_pathways.share_within_standard if m.cancer_pathways.pathways else None,
            percent(m.cancer_pathways.share_within_standard)
            if m.cancer_pathways.pathways
            else "ingen",
            m.cancer_pathways.suppressed,
        )
        for m in months
    ]
    return [
        column_chart(
            "overliggerdogn",
            "Overliggerdøgn",
            "Døgn utskrivningsklare pasienter ventet på sykehus og kommunen betaler for",
            days,
            axis=lambda v: f"{v:g}".replace(".", ","),  # Norwegian decimal comma
        ),
        column_chart(
            "meldinger",
            "Meldinger besvart i tide",
            "Andelen PLO-meldinger til kommunen som fikk applikasjonskvittering innen fristen",
            answered,
            axis=percent,
            top=1.0,
        ),
        column_chart(
            "kreftforlop",
            "Pakkeforløp for kreft innen standard forløpstid",
            "Andelen av innbyggernes pakkeforløp som startet behandling innen standard tid",
            cancer,
            axis=percent,
            top=1.0,
            target=(0.7, "Mål 70\u00a0%"),
        ),
    ]


def _measured(m: pathway_pb2.MessageStatistics) -> bool:
    return bool(m.answered_in_time + m.answered_late + m.unanswered_overdue)


def amount(cell: pathway_pb2.WaitingDaysStatistics) -> str:
    """The month's amount for the table: kroner, or why it is missing."""
    if cell.amount_unavailable_reason:
        return "ukjent sats"
    return kroner(cell.amount_nok)
