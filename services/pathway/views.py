"""Queries on the read model: every read that answers someone (the gRPC API, the change feed,
the deadline watch) is here; the projector reads only what it writes with (its stored fold
states and, to fold a patient again, their stored events)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from services.pathway import readmodel as rm
from services.pathway.folding.medications import medication_list
from services.pathway.rows import derive_rows
from shared.access.model import Basis, blocks, relationships
from shared.actors import Actor
from shared.medication_list import Entry, EntryState, MedicationListView, Reconciliation
from shared.times import utc_iso

Row = Mapping[Any, Any]


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """One consistent view of the read model for several queries: the projector may commit a
    refold between two SELECTs, and a patient row must match its timeline and tasks.
    SQLite (WAL): an explicit read transaction; PostgreSQL: REPEATABLE READ."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")
        else:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield conn
        finally:
            conn.rollback()


@dataclass(frozen=True)
class PathwayView:
    """The patient's read-model rows, from one snapshot (or, `as_of`, from a replay)."""

    patient: Row
    timeline: Sequence[Row]
    referrals: Sequence[Row]
    tasks: Sequence[Row]
    stays: Sequence[Row]  # in order of admission
    messages: Sequence[Row]  # in the order sent
    payments: Sequence[Row]  # readiness periods (rows.answer_rows)
    medications: MedicationListView | None  # at the clinical time asked for
    #: True when a page of the timeline was asked for and the timeline goes on after it.
    timeline_goes_on: bool = False


@dataclass(frozen=True)
class TimelinePage:
    """A page of the timeline: `size` entries from timeline position `start` on (positions are
    the timeline's key, in its order; the next page starts after the page's last position)."""

    start: int
    size: int


def get_pathway(
    engine: Engine,
    key: str,
    as_of: datetime | None = None,
    medications_at: datetime | None = None,
    page: TimelinePage | None = None,
) -> PathwayView | None:
    """The patient's pathway now, from the read model's rows only (no fold: its size is the
    answer's, not the patient's history) with the medication list at clinical time
    `medications_at` (None: now), and the whole timeline or one `page` of it (read by the
    timeline's key, so a page costs the same however long the patient's history is).

    `as_of` (recorded time) asks what was known at a past moment: that answer REPLAYS the
    patient's history — only the events recorded by then, folded exactly as the projector
    folds them into exactly the same rows — so it costs a fold of the history."""
    if as_of is not None:
        view = _replayed(engine, key, as_of, medications_at)
        if view is None or page is None:
            return view
        entries = [r for r in view.timeline if r["position"] >= page.start][: page.size + 1]
        return replace(
            view, timeline=entries[: page.size], timeline_goes_on=len(entries) > page.size
        )
    with snapshot(engine) as conn:
        patient = (
            conn.execute(sa.select(rm.patients).where(rm.patients.c.patient_key == key))
            .mappings()
            .first()
        )
        if patient is None:
            return None

        def rows(table: sa.Table, *order: Any) -> list[Row]:
            query = sa.select(table).where(table.c.patient_key == key).order_by(*order)
            return list(conn.execute(query).mappings())

        t = rm.timeline
        query = sa.select(t).where(t.c.patient_key == key).order_by(t.c.position)
        if page is not None:  # one more than the page: whether the timeline goes on
            query = query.where(t.c.position >= page.start).limit(page.size + 1)
        timeline = list(conn.execute(query).mappings())
        goes_on = page is not None and len(timeline) > page.size
        return PathwayView(
            patient=patient,
            timeline=timeline[: page.size] if page is not None else timeline,
            timeline_goes_on=goes_on,
            referrals=rows(
                rm.referrals, rm.referrals.c.sent_at.desc(), rm.referrals.c.referral_id.desc()
            ),
            tasks=rows(rm.tasks, rm.tasks.c.due, rm.tasks.c.task_id),
            stays=rows(rm.stays, rm.stays.c.admitted_at, rm.stays.c.stay_id),
            messages=rows(rm.messages, rm.messages.c.position),
            payments=rows(rm.payments, rm.payments.c.position),
            medications=_medication_list(conn, key, medications_at),
        )


def _replayed(
    engine: Engine, key: str, as_of: datetime, medications_at: datetime | None
) -> PathwayView | None:
    """The pathway as known at `as_of`, replayed from the events recorded by then."""
    with snapshot(engine) as conn:
        history = rm.histories(conn, [key], as_of)[key]
    derived = derive_rows(key, history)
    if "pathway_patients" not in derived:
        return None

    def ordered(name: str, *by: str) -> list[Row]:
        return sorted(derived[name], key=lambda r: tuple(r[k] for k in by))

    return PathwayView(
        patient=derived["pathway_patients"][0],
        timeline=derived["pathway_timeline"],
        referrals=derived["pathway_referrals"],
        tasks=derived["pathway_tasks"],
        stays=ordered("pathway_stays", "admitted_at", "stay_id"),
        messages=derived["pathway_messages"],
        payments=derived["pathway_payments"],
        medications=medication_list(history, medications_at),
    )


def _entry(row: Row) -> Entry:
    return Entry(
        entry_id=row["entry_id"],
        atc_code=row["atc_code"],
        name=row["name"],
        dose=row["dose"],
        reason=row["reason"],
        source_her_id=row["source_her_id"],
        source_kind=row["source_kind"],
        prescribed_at=datetime.fromisoformat(row["prescribed_at"]),
        prescribed_by=row["prescribed_by"],
        last_changed_at=datetime.fromisoformat(row["last_changed_at"]),
        last_changed_by=row["last_changed_by"],
        state=EntryState(row["state"]),
        state_reason=row["state_reason"],
    )


def _medication_list(
    conn: Connection, key: str, clinical_at: datetime | None
) -> MedicationListView | None:
    """The list at clinical time `clinical_at` (None: now): for each entry on it, its latest
    version valid from then or before (one index seek per entry), and the latest
    reconciliation by then."""
    lists = rm.medication_lists
    found = conn.execute(sa.select(lists).where(lists.c.patient_key == key)).mappings().first()
    if found is None:
        return None
    v, e, r = rm.medication_versions, rm.medication_entries, rm.medication_reconciliations
    stamp = utc_iso(clinical_at) if clinical_at is not None else None
    at = v.alias("version_at")
    latest = sa.select(at.c.seq).where(
        at.c.patient_key == e.c.patient_key, at.c.entry_id == e.c.entry_id
    )
    if stamp is not None:
        latest = latest.where(at.c.valid_from <= stamp)
    latest = latest.order_by(at.c.valid_from.desc(), at.c.seq.desc()).limit(1).correlate(e)
    # Two steps, so each is a seek: the version of each entry (from the entry, one index seek
    # each), then those versions by primary key. As one join the planners walk every version
    # of the patient and test each, which costs the list's whole history.
    current = conn.execute(
        sa.select(e.c.entry_id, e.c.position, latest.scalar_subquery()).where(
            e.c.patient_key == key
        )
    ).all()
    order = {entry_id: position for entry_id, position, _ in current}
    wanted = [(entry_id, seq) for entry_id, _, seq in current if seq is not None]
    query = sa.select(v).where(v.c.patient_key == key, sa.tuple_(v.c.entry_id, v.c.seq).in_(wanted))
    view = MedicationListView(
        list_id=UUID(found["list_id"]),
        patient=dict(zip(("system", "value"), key.split("|", 1), strict=True)),
        version=int(found["version"]),
        as_of=clinical_at,
    )
    versions = list(conn.execute(query).mappings()) if wanted else []
    for version in sorted(versions, key=lambda version: order[version["entry_id"]]):
        view.entries[version["entry_id"]] = _entry(version)
    rec = sa.select(r).where(r.c.patient_key == key)
    if stamp is not None:
        rec = rec.where(r.c.valid_from <= stamp)
    last = conn.execute(rec.order_by(r.c.valid_from.desc(), r.c.seq.desc()).limit(1)).mappings()
    for row in last:
        view.last_reconciliation = Reconciliation(
            reconciled_at=datetime.fromisoformat(row["valid_from"]),
            reconciled_by=row["reconciled_by"],
            sources=tuple(row["sources"]),
            note=row["note"],
        )
    return view


@dataclass(frozen=True)
class WorklistFilter:
    """What a coordinator narrows the municipality's list to (None/False: no narrowing)."""

    only_with_open_tasks: bool = False
    overdue_at: datetime | None = None  # only patients with a task due before this moment
    waiting_on_kind: str | None = None  # MUNICIPALITY | GP | HOSPITAL
    location_kind: str | None = None
    only_ready_for_discharge: bool = False
    patient_prefix: str = ""


def list_pathways(
    engine: Engine,
    reader: Actor,
    member_bases: Sequence[Basis],
    now: datetime,
    where: WorklistFilter,
    limit: int,
    offset: int,
) -> list[tuple[Row, list[Row]]]:
    """The patients of the reader's organisation — those it has one of `member_bases` with
    now, unless the patient has blocked the organisation or the reader — with their open tasks
    (one snapshot, so the two agree), the earliest due task first (overdue lead)."""
    p, t, r, b = rm.patients, rm.tasks, relationships, blocks
    stamp = utc_iso(now)
    member = sa.select(r.c.patient_key).where(
        r.c.patient_key == p.c.patient_key,
        r.c.her_id == reader.her_id,
        r.c.basis.in_([basis.value for basis in member_bases]),
        r.c.valid_from <= stamp,
        sa.or_(r.c.valid_to.is_(None), r.c.valid_to > stamp),
    )
    names = [b.c.her_id == reader.her_id]
    if reader.hpr:
        names.append(b.c.hpr == reader.hpr)
    blocked = sa.select(b.c.patient_key).where(b.c.patient_key == p.c.patient_key, sa.or_(*names))
    query = sa.select(p).where(member.exists(), ~blocked.exists())
    if where.only_with_open_tasks:
        query = query.where(p.c.open_tasks > 0)
    if where.overdue_at is not None:
        query = query.where(p.c.next_due < utc_iso(where.overdue_at))
    if where.waiting_on_kind:
        waiting = sa.select(t.c.patient_key).where(
            t.c.patient_key == p.c.patient_key, t.c.waiting_on_kind == where.waiting_on_kind
        )
        query = query.where(waiting.exists())
    if where.location_kind:
        query = query.where(p.c.location_kind == where.location_kind)
    if where.only_ready_for_discharge:
        query = query.where(p.c.ready_for_discharge_since.is_not(None))
    if where.patient_prefix:
        query = query.where(p.c.value.startswith(where.patient_prefix, autoescape=True))
    query = query.order_by(*rm.WORKLIST_ORDER)
    with snapshot(engine) as conn:
        rows = list(conn.execute(query.limit(limit).offset(offset)).mappings())
        tasks: dict[str, list[Row]] = {r["patient_key"]: [] for r in rows}
        if tasks:
            of_page = t.c.patient_key.in_(list(tasks))
            for task in conn.execute(sa.select(t).where(of_page).order_by(t.c.due, t.c.task_id)):
                tasks[task.patient_key].append(task._mapping)
    return [(row, tasks[row["patient_key"]]) for row in rows]


def latest_change(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(rm.changes.c.sequence))).scalar() or 0)


#: Changes read from the feed at a time.
CHANGES_PAGE = 500


def changes_after(engine: Engine, sequence: int) -> list[Row]:
    """The next page of the change feed after `sequence`, oldest first."""
    c = rm.changes
    query = sa.select(c).where(c.c.sequence > sequence).order_by(c.c.sequence).limit(CHANGES_PAGE)
    with engine.connect() as conn:
        return list(conn.execute(query).mappings())


def unannounced_breaches(engine: Engine, now: datetime, limit: int = 500) -> list[Any]:
    """Open tasks past their due time whose breach has not been announced yet, earliest first
    (services/pathway/deadlines.py announces them)."""
    t, b, p = rm.tasks, rm.breaches, rm.patients
    announced = sa.select(b.c.task_id).where(b.c.task_id == t.c.task_id, b.c.due == t.c.due)
    query = (
        sa.select(t, p.c.system, p.c.value)
        .join(p, p.c.patient_key == t.c.patient_key)
        .where(t.c.due < utc_iso(now), ~sa.exists(announced))
        .order_by(t.c.due, t.c.task_id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return list(conn.execute(query).mappings())
