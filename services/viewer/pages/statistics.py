"""The municipality's numbers (/statistikk): overliggerdøgn and their amount, PLO messages
answered in time and cancer pathways within standard, month by month, as charts (server-drawn
SVG, services/viewer/charts.py) and as a table, for a chosen range of months.

The months are chosen in the address (`fra=2026-01&til=2026-06`: no personal data, so a link
can be shared); the numbers come from PathwayService/Statistics with the coordinator's own
token, for the coordinator's own municipality only, figures resting on a few patients already
suppressed by the service.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from carepath.v1 import pathway_pb2
from services.viewer import charts, present
from services.viewer.pages.common import signed_in
from services.viewer.web import COORDINATOR, Problem, web_of
from shared.times import OSLO

#: How many months the page shows when none are chosen (the last twelve, this one included).
DEFAULT_MONTHS = 12


def _month(text: str, name: str) -> pathway_pb2.YearMonth:
    """ "2026-03" (what <input type="month"> sends) → the contract's month."""
    try:
        year, month = (int(part) for part in text.split("-"))
    except ValueError:
        raise Problem(
            400, "Ugyldig måned", f"Velg {name} som år og måned, f.eks. 2026-03."
        ) from None
    return pathway_pb2.YearMonth(year=year, month=month)


def _label(m: pathway_pb2.YearMonth) -> str:
    return f"{m.year:04d}-{m.month:02d}"


def chosen_months(request: Request) -> tuple[pathway_pb2.YearMonth, pathway_pb2.YearMonth]:
    """The range the address asks for; by default the last twelve months."""
    today = datetime.now(UTC).astimezone(OSLO).date()
    last = pathway_pb2.YearMonth(year=today.year, month=today.month)
    if request.query_params.get("til"):
        last = _month(request.query_params["til"], "til-måned")
    start = last.year * 12 + last.month - 1 - (DEFAULT_MONTHS - 1)
    first = pathway_pb2.YearMonth(year=start // 12, month=start % 12 + 1)
    if request.query_params.get("fra"):
        first = _month(request.query_params["fra"], "fra-måned")
    if (first.year, first.month) > (last.year, last.month):
        raise Problem(400, "Ugyldig periode", "Til-måneden kan ikke være før fra-måneden.")
    return first, last


async def statistics_page(request: Request) -> Response:
    session = signed_in(request)
    first, last = chosen_months(request)
    query = pathway_pb2.StatisticsRequest(
        municipality_her_id=session.actor.her_id, from_month=first, to_month=last
    )
    reply = await web_of(request).call(
        web_of(request).pathway.Statistics,
        query,
        session.token,
        COORDINATOR,
        denied="Tallene vises bare for din egen kommune.",
    )
    context: dict[str, Any] = {
        "actor": session.actor,
        "csrf": session.csrf,
        "names": present.Directory.of(
            [reply.municipality] if reply.HasField("municipality") else []
        ),
        "charts": charts.charts(reply),
        "months": reply.months,
        "threshold": reply.suppression_threshold,
        "first": _label(first),
        "last": _label(last),
        "month_name": charts.month_name,
        "percent": charts.percent,
        "amount": charts.amount,
        "SUPPRESSED": charts.SUPPRESSED,
        "now": reply.as_of,
    }
    return web_of(request).render("statistics.html", **context)


ROUTES = [Route("/statistikk", statistics_page, methods=["GET"])]
