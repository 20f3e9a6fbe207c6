"""The care relationships and blocks of one patient as access-fact rows, from the fold.

What the access policy decides on (shared.access), derived by the same fold as the pathway:
- the register facts the registry published: residence and temporary residence
  (municipalities), fastlege (GP office and doctor) — each period with its dates;
- what organisations did: a GP office's referral while open, the receiving hospital while the
  referral is open, every hospital of a stay until the window after discharge, a municipality
  sent a PLO message about a stay while the stay is open;
- the patient's blocks still in force.

Never from an event's fields naming another organisation as the patient's (an admission's
`municipality_her_id` gives that municipality nothing; only a message actually sent to it does),
and never from an event's actor claiming to be the patient's municipality.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from shared.access.model import Basis, grace_after_end
from shared.times import day_after, day_start, utc_iso

if TYPE_CHECKING:
    from services.pathway.folding.pathway import PatientPathway
    from services.pathway.folding.registers import BlockChange
    from shared.registers import Period

Row = dict[str, object]


def block_rows(key: str, blocks: list[BlockChange]) -> list[Row]:
    """The patient's blocks still in force (PatientPathway.blocks)."""
    return [
        {
            "patient_key": key,
            "block_id": b.block_id,
            "her_id": b.her_id,
            "hpr": b.hpr,
            "blocked_at": b.blocked_at,
        }
        for b in blocks
    ]


def _until(end: str | None, basis: Basis) -> str | None:
    """A relationship's end plus the time it still counts after it (rules.toml)."""
    if end is None:
        return None
    return utc_iso(datetime.fromisoformat(end) + grace_after_end(basis))


def relationship_rows(key: str, pathway: PatientPathway) -> list[Row]:
    """Every care relationship of the patient, with its time bounds (stored times)."""
    found: set[tuple[str, str, str | None, str, str | None, str]] = set()

    def add(
        her_id: str, basis: Basis, start: str, end: str | None, source: str, hpr: str | None = None
    ) -> None:
        if her_id:
            found.add((her_id, basis.value, hpr, start, _until(end, basis), source))

    def periods(periods: list[Period], basis: Basis, source: str) -> None:
        for p in periods:
            end = day_after(p.valid_to) if p.valid_to else None
            add(p.her_id, basis, day_start(p.valid_from), end, source, p.hpr)

    facts = pathway.register
    periods(facts.residence, Basis.RESIDENCE_MUNICIPALITY, "folkeregisteret")
    periods(facts.temporary_residence, Basis.TEMPORARY_RESIDENCE_MUNICIPALITY, "folkeregisteret")
    periods(facts.fastlege, Basis.FASTLEGE, "fastlegeregisteret")
    for r in pathway.referrals:
        add(r.sender_her_id, Basis.REFERRAL_SENDER, r.sent_at, r.closed_at, r.referral_id)
        for her_id, since, until in r.receivers:
            add(her_id, Basis.REFERRAL_RECEIVER, since, until or r.closed_at, r.referral_id)
    closed: dict[str, str | None] = {}
    for s in pathway.stays:
        closed[s.stay_id] = s.closed_at
        for her_id, since in s.hospitals:
            add(her_id, Basis.STAY_HOSPITAL, since, s.closed_at, s.stay_id)
        for m in s.messages.values():
            if m.to_kind == "MUNICIPALITY":
                add(m.to_her_id, Basis.MESSAGE_RECEIVER, m.sent_at, s.closed_at, s.stay_id)
    for d in pathway.discharges:
        stay_closed = closed.get(d.stay_id, d.discharged_at)
        for m in d.messages.values():
            if m.to_kind == "MUNICIPALITY" and (stay_closed is None or m.sent_at < stay_closed):
                add(m.to_her_id, Basis.MESSAGE_RECEIVER, m.sent_at, stay_closed, d.stay_id)
    return [
        {
            "patient_key": key,
            "her_id": her_id,
            "basis": basis,
            "hpr": hpr,
            "valid_from": start,
            "valid_to": end,
            "source_id": source,
        }
        for her_id, basis, hpr, start, end, source in sorted(
            found, key=lambda f: tuple(x or "" for x in f)
        )
    ]
