"""Where the patient is, from the folded stays, discharges, municipal services and the
registers' death (pure, no I/O)."""

from __future__ import annotations

from services.pathway.folding.model import (
    INSTITUTION_LOCATIONS,
    UNKNOWN,
    Death,
    DischargeView,
    Location,
    MunicipalServiceView,
    StayView,
)

#: Where a patient is who receives services at home: the home-based services.
HOME_KINDS = frozenset({"HOME", "UNSPECIFIED"})


def location(
    stays: list[StayView],
    discharges: list[DischargeView],
    services: list[MunicipalServiceView] | None = None,
    death: Death | None = None,
) -> Location:
    """Deceased once the registers say so. Otherwise in hospital while a stay is open (after a
    discharge to another hospital, that hospital's new stay): a hospital stay takes precedence
    while it lasts. Otherwise the latest of: where the latest discharge sent the patient, a
    place in an institution that started (short-term, long-term, rehabilitation), and home when
    such a place ended; at home (or unknown) with a service at home running, home with
    services."""
    if death is not None:
        return Location("DECEASED", None, None, death.at)
    open_stays = [s for s in stays if s.closed_at is None]
    discharged = [d for d in discharges if d.discharged_at and d.destination != "OTHER_HOSPITAL"]
    latest = max(discharged, key=lambda d: (d.discharged_at or "", d.discharge_id), default=None)
    if open_stays:
        current = max(open_stays, key=lambda s: (s.since, s.stay_id))
        if latest is None or (latest.discharged_at or "") < current.since:
            return Location("HOSPITAL", current.hospital_her_id, current.ward, current.since)
    found: list[tuple[str, str, Location]] = []  # (since, tiebreak, where)
    if latest is not None and latest.destination and latest.discharged_at:
        where = Location(latest.destination, latest.destination_her_id, None, latest.discharged_at)
        found.append((latest.discharged_at, latest.discharge_id, where))
    for s in services or []:
        place = INSTITUTION_LOCATIONS.get(s.kind)
        if place is None or s.started_at is None:
            continue
        found.append((s.started_at, s.service_id, Location(place, s.institution_her_id, None,
                                                           s.started_at)))  # fmt: skip
        if s.ended_at is not None:
            found.append((s.ended_at, s.service_id, Location("HOME", None, None, s.ended_at)))
    where = max(found, key=lambda f: (f[0], f[1]))[2] if found else UNKNOWN
    at_home = [s for s in services or [] if s.running and s.kind not in INSTITUTION_LOCATIONS]
    if where.kind in HOME_KINDS and at_home:
        since = max([s.started_at or "" for s in at_home] + [where.since or ""])
        return Location("HOME_WITH_SERVICES", None, None, since)
    return where
