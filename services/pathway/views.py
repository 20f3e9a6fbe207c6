"""Queries on the read model (the only place that reads it)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from services.pathway import readmodel as rm
from services.pathway.fold import PatientPathway, fold, rows_of
from shared.access.model import Basis, blocks, relationships
from shared.actors import Actor
from shared.events import Envelope
from shared.medication_list import Change, MedicationListView
from shared.medication_list import fold as medication_fold
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
    """The patient's read-model rows and, from the same snapshot, their events and the fold of
    them (messages, stays, discharges and medications are computed from it on read)."""

    patient: Row
    timeline: Sequence[Row]
    referrals: Sequence[Row]
    tasks: Sequence[Row]
    history: list[Envelope]
    pathway: PatientPathway


def get_pathway(engine: Engine, key: str, as_of: datetime | None = None) -> PathwayView | None:
    """The patient's pathway now (from the read model), or as it was known at `as_of`:
    only the events recorded by then, folded exactly as the projector folds them. Either way
    the patient's events are read once, in the same snapshot as the rows."""
    with snapshot(engine) as conn:
        history = rm.histories(conn, [key], as_of)[key]
        pathway = fold(history)
        if as_of is not None:
            derived = rows_of(key, pathway)
            if not derived:
                return None
            return PathwayView(
                patient=derived["pathway_patients"][0],
                timeline=derived["pathway_timeline"],
                referrals=derived["pathway_referrals"],
                tasks=derived["pathway_tasks"],
                history=history,
                pathway=pathway,
            )
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

        return PathwayView(
            patient=patient,
            timeline=rows(rm.timeline, rm.timeline.c.position),
            referrals=rows(
                rm.referrals, rm.referrals.c.sent_at.desc(), rm.referrals.c.referral_id.desc()
            ),
            tasks=rows(rm.tasks, rm.tasks.c.due, rm.tasks.c.task_id),
            history=history,
            pathway=pathway,
        )


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
    query = query.order_by(p.c.next_due.is_(None), p.c.next_due, p.c.patient_key)
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


def medication_list(
    history: Sequence[Envelope], clinical_at: datetime | None
) -> MedicationListView | None:
    """The patient's shared medication list from their medications events, folded by the
    medications service's own pure fold at clinical time `clinical_at` (None: all known)."""
    envelopes = [env for env in history if env.source == "medications"]
    if not envelopes:
        return None
    changes = [
        Change(
            event_type=env.event_type,
            version=env.aggregate_version,
            occurred_at=env.occurred,
            actor=env.actor,
            command_id=env.causation_id,
            data=env.data,
        )
        for env in envelopes
    ]
    first = envelopes[0]
    return medication_fold(UUID(first.aggregate_id), first.patient, changes, clinical_at)
