"""What the registers say about a patient, and the organisation directory, from the registry's
events (pure, no I/O): residence and temporary residence (municipalities), fastlege (GP office
and doctor) — each period with its dates — and the patient's blocks.

Register events are not clinical events: they stay off the timeline and are read in the order
they were recorded (aggregate, then version), so the fold keeps them as a short sorted list
and a late one is simply put in its place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from shared.events import Envelope
from shared.events import registry as reg
from shared.registers import Period, Record, separate, successive
from shared.times import utc_iso

SOURCE = "registry"
REGISTRATION_EVENTS = (reg.ResidenceRecorded, reg.TemporaryResidenceRecorded, reg.FastlegeAssigned)
BLOCK_EVENTS = (reg.AccessBlocked, reg.AccessBlockLifted)
DIRECTORY_EVENTS = (reg.OrganisationRegistered, reg.OrganisationChanged)


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

    def fastlege_on(self, day: date) -> str | None:
        """The GP office Fastlegeregisteret names as the patient's fastlege on `day` (None:
        none known)."""
        held = [p for p in self.fastlege if p.holds_on(day)]
        return held[-1].her_id if held else None

    @property
    def home_municipality(self) -> str | None:
        """The latest residence the registers name (None: unknown)."""
        return self.residence[-1].her_id if self.residence else None


@dataclass(frozen=True)
class Registration:
    """One register event as the fold keeps it, with its place (aggregate, version)."""

    aggregate_id: str
    version: int
    kind: str  # RESIDENCE | TEMPORARY_RESIDENCE | FASTLEGE
    her_id: str
    valid_from: str  # ISO date
    valid_to: str | None
    hpr: str | None = None

    @property
    def place(self) -> tuple[str, int]:
        return (self.aggregate_id, self.version)


@dataclass(frozen=True)
class BlockChange:
    """A block put on or lifted, with its place (aggregate, version)."""

    aggregate_id: str
    version: int
    block_id: str
    lifted: bool
    her_id: str | None = None
    hpr: str | None = None
    blocked_at: str | None = None

    @property
    def place(self) -> tuple[str, int]:
        return (self.aggregate_id, self.version)


def registration(e: Envelope) -> Registration | None:
    match e.data:
        case reg.ResidenceRecorded() as d:
            kind, her_id, valid_to, hpr = "RESIDENCE", d.municipality_her_id, None, None
        case reg.TemporaryResidenceRecorded() as d:
            kind, her_id, valid_to, hpr = (
                "TEMPORARY_RESIDENCE",
                d.municipality_her_id,
                d.valid_to,
                None,
            )
        case reg.FastlegeAssigned() as d:
            kind, her_id, valid_to, hpr = "FASTLEGE", d.gp_her_id, d.valid_to, d.gp_hpr
        case _:
            return None
    return Registration(
        e.aggregate_id, e.aggregate_version, kind, her_id, d.valid_from, valid_to, hpr
    )


def block_change(e: Envelope) -> BlockChange | None:
    match e.data:
        case reg.AccessBlocked() as blocked:
            return BlockChange(
                e.aggregate_id,
                e.aggregate_version,
                blocked.block_id,
                False,
                blocked.her_id,
                blocked.hpr,
                utc_iso(e.occurred_at),
            )
        case reg.AccessBlockLifted(block_id=block_id):
            return BlockChange(e.aggregate_id, e.aggregate_version, block_id, True)
    return None


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def facts_of(registrations: Iterable[Registration]) -> RegisterFacts:
    """The registry's periods for the patient, read in the order they were recorded."""
    records: dict[str, list[Record]] = {"RESIDENCE": [], "TEMPORARY_RESIDENCE": [], "FASTLEGE": []}
    for r in sorted(registrations, key=lambda r: r.place):
        start = date.fromisoformat(r.valid_from)
        if r.kind == "RESIDENCE":
            records[r.kind].append(Record(r.her_id, start))
        elif r.kind == "TEMPORARY_RESIDENCE":
            records[r.kind].append(Record(r.her_id, start, _day(r.valid_to)))
        else:
            records[r.kind].append(Record(r.her_id, start, _day(r.valid_to), r.hpr))
    return RegisterFacts(
        successive(records["RESIDENCE"]),
        separate(records["TEMPORARY_RESIDENCE"]),
        successive(records["FASTLEGE"]),
    )


def register_facts(history: Iterable[Envelope]) -> RegisterFacts:
    """The register facts from a patient's events (the registry's; others are ignored)."""
    return facts_of(r for r in map(registration, history) if r is not None)


def active_blocks(changes: Iterable[BlockChange]) -> list[BlockChange]:
    """The patient's blocks still in force, by block id."""
    active: dict[str, BlockChange] = {}
    for c in sorted(changes, key=lambda c: c.place):
        if c.lifted:
            active.pop(c.block_id, None)
        else:
            active[c.block_id] = c
    return [active[b] for b in sorted(active)]


def organisations(history: Iterable[Envelope]) -> list[dict[str, object]]:
    """The organisation directory from its events (the newest entry of each HER-id)."""
    latest: dict[str, dict[str, object]] = {}
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
