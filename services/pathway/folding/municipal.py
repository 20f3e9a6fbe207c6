"""The municipal-service part of the fold: each service's decision (vedtak), start and end
(pure, no I/O)."""

from __future__ import annotations

from services.pathway.folding.model import MunicipalServiceView
from shared.events import Envelope
from shared.events import municipal as mun
from shared.times import utc_iso

SOURCE = "municipal"


def step_service(view: MunicipalServiceView | None, e: Envelope) -> MunicipalServiceView | None:
    """The service after one more of its events (in version order); None while its decision
    has not arrived (the fold waits for it)."""
    when = utc_iso(e.occurred_at)
    if isinstance(e.data, mun.MunicipalServiceDecided):
        decided = e.data
        return MunicipalServiceView(
            service_id=e.aggregate_id,
            kind=decided.kind,
            municipality_her_id=decided.municipality_her_id,
            institution_her_id=decided.institution_her_id,
            decided_at=when,
            starts_on=decided.starts_on,
        )
    if view is None:
        return None
    match e.data:
        case mun.MunicipalServiceStarted():
            view.started_at = when
        case mun.MunicipalServiceEnded(reason=reason):
            view.ended_at, view.end_reason = when, reason
    return view
