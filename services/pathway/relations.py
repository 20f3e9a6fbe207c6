"""The care relationships and blocks of one patient, from their events (pure, no I/O).

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

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from shared.access.model import Basis, grace_after_end
from shared.events import Envelope
from shared.events import registry as reg
from shared.registers import Period, Record, separate, successive
from shared.times import day_after, day_start, utc_iso

if TYPE_CHECKING:
    from services.pathway.fold import PatientPathway

SOURCE = "registry"
REGISTRATION_EVENTS = (reg.ResidenceRecorded, reg.TemporaryResidenceRecorded, reg.FastlegeAssigned)
BLOCK_EVENTS = (reg.AccessBlocked, reg.AccessBlockLifted)
DIRECTORY_EVENTS = (reg.OrganisationRegistered, reg.OrganisationChanged)

Row = dict[str, object]


@dataclass(frozen=True)
class RegisterFacts:
    """The patient's register periods, oldest first."""

    residence: list[Period]
    temporary_residence: list[Period]
    fastlege: list[Period]

    def municipality_on(self, day: date) -> str | None:
        """Who pays for a day in hospital ready for discharge: the municipality the patient
        stays in (oppholdskommune) that day, else the one they live in."""
        for periods in (self.temporary_residence, self.residence):
            held = [p for p in periods if p.holds_on(day)]
            if held:
                return held[-1].her_id
        return None

    @property
    def home_municipality(self) -> str | None:
        """The latest residence the registers name (None: unknown)."""
        return self.residence[-1].her_id if self.residence else None


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def register_facts(history: Iterable[Envelope]) -> RegisterFacts:
    """The registry's periods for the patient, read in the order they were recorded."""
    residence: list[Record] = []
    temporary: list[Record] = []
    fastlege: list[Record] = []
    events = [e for e in history if isinstance(e.data, REGISTRATION_EVENTS)]
    for e in sorted(events, key=lambda e: (e.aggregate_id, e.aggregate_version)):
        match e.data:
            case reg.ResidenceRecorded() as d:
                residence.append(Record(d.municipality_her_id, date.fromisoformat(d.valid_from)))
            case reg.TemporaryResidenceRecorded() as d:
                start = date.fromisoformat(d.valid_from)
                temporary.append(Record(d.municipality_her_id, start, _day(d.valid_to)))
            case reg.FastlegeAssigned() as d:
                start = date.fromisoformat(d.valid_from)
                fastlege.append(Record(d.gp_her_id, start, _day(d.valid_to), d.gp_hpr))
    return RegisterFacts(successive(residence), separate(temporary), successive(fastlege))


def block_rows(key: str, history: Iterable[Envelope]) -> list[Row]:
    """The patient's blocks still in force."""
    active: dict[str, Row] = {}
    events = [e for e in history if isinstance(e.data, BLOCK_EVENTS)]
    for e in sorted(events, key=lambda e: (e.aggregate_id, e.aggregate_version)):
        match e.data:
            case reg.AccessBlocked() as blocked:
                active[blocked.block_id] = {
                    "patient_key": key,
                    "block_id": blocked.block_id,
                    "her_id": blocked.her_id,
                    "hpr": blocked.hpr,
                    "blocked_at": utc_iso(e.occurred_at),
                }
            case reg.AccessBlockLifted(block_id=block_id):
                active.pop(block_id, None)
    return [active[b] for b in sorted(active)]


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


def directory_rows(history: Iterable[Envelope]) -> list[Row]:
    """The organisation directory from its events (the newest entry of each HER-id)."""
    latest: dict[str, Row] = {}
    events = [e for e in history if isinstance(e.data, DIRECTORY_EVENTS)]
    for e in sorted(events, key=lambda e: (e.aggregate_id, e.aggregate_version)):
        match e.data:
            case reg.OrganisationRegistered(her_id=her_id) as d:
                pass
            case reg.OrganisationChanged() as d:
                her_id = str(latest.get(e.aggregate_id, {}).get("her_id") or "")
                if not her_id:  # changed before registered: wait for the registration
                    continue
            case _:
                continue
        latest[e.aggregate_id] = {
            "her_id": her_id,
            "kind": d.kind,
            "name": d.name,
            "parent_her_id": d.parent_her_id,
            "orgnr": d.orgnr,
        }
    return sorted(latest.values(), key=lambda r: str(r["her_id"]))
