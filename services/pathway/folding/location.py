"""Where the patient is, from the folded stays and discharges (pure, no I/O)."""

from __future__ import annotations

from services.pathway.folding.model import UNKNOWN, DischargeView, Location, StayView


def location(stays: list[StayView], discharges: list[DischargeView]) -> Location:
    """In hospital while a stay is open (after a discharge to another hospital, that
    hospital's new stay); otherwise where the latest discharge sent the patient."""
    open_stays = [s for s in stays if s.closed_at is None]
    discharged = [d for d in discharges if d.discharged_at and d.destination != "OTHER_HOSPITAL"]
    latest = max(discharged, key=lambda d: (d.discharged_at or "", d.discharge_id), default=None)
    if open_stays:
        current = max(open_stays, key=lambda s: (s.since, s.stay_id))
        if latest is None or (latest.discharged_at or "") < current.since:
            return Location("HOSPITAL", current.hospital_her_id, current.ward, current.since)
    if latest is not None and latest.destination:
        return Location(latest.destination, latest.destination_her_id, None, latest.discharged_at)
    return UNKNOWN
