"""Queries on the read model: every read that answers someone (the gRPC API, the change feed,
the deadline watch) is here; the projector reads only what it writes with (its stored fold
states and, to fold a patient again, their stored events)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from services.pathway import readmodel as rm
from services.pathway.folding.medications import medication_list
from services.pathway.rows import derive_rows
from services.pathway.statistics import Month
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
    correspondence: Sequence[Row]  # municipality ↔ GP, in the order opened
    payments: Sequence[Row]  # readiness periods (rows.answer_rows)
    services: Sequence[Row]  # municipal services, the earliest decision first
    medications: MedicationListView | None  # at the clinical time asked for
    #: The daily rates by year (payment_rates) when the patient has payment periods, else {}.
    rates: Mapping[int, int] = dataclasses.field(default_factory=dict)
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

        payments = rows(rm.payments, rm.payments.c.position)
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
            payments=payments,
            services=rows(
                rm.municipal_services,
                rm.municipal_services.c.decided_at,
                rm.municipal_services.c.service_id,
            ),
            correspondence=rows(
                rm.correspondence,
                rm.correspondence.c.sent_at,
                rm.correspondence.c.correspondence_id,
            ),
            medications=_medication_list(conn, key, medications_at),
            rates=payment_rates(conn) if payments else {},
        )


def _replayed(
    engine: Engine, key: str, as_of: datetime, medications_at: datetime | None
) -> PathwayView | None:
    """The pathway as known at `as_of`, replayed from the events recorded by then."""
    with snapshot(engine) as conn:
        history = rm.histories(conn, [key], as_of)[key]
        rates = payment_rates(conn)
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
        correspondence=ordered("pathway_correspondence", "sent_at", "correspondence_id"),
        payments=derived["pathway_payments"],
        services=ordered("pathway_municipal_services", "decided_at", "service_id"),
        medications=medication_list(history, medications_at),
        rates=rates,
    )


def payment_rates(conn: Connection) -> dict[int, int]:
    """The daily rate of each year the payment_rates table holds (NOK per døgn)."""
    table = rm.payment_rates
    return {
        int(year): int(nok)
        for year, nok in conn.execute(sa.select(table.c.year, table.c.daily_rate_nok))
    }


def daily_rates(engine: Engine) -> dict[int, int]:
    """`payment_rates` on a connection of its own (a read that needs only the rates)."""
    with engine.connect() as conn:
        return payment_rates(conn)


def payment_rate_rows(engine: Engine) -> list[Row]:
    """Every rate with its source and who added it when, by year (the operator's list)."""
    with engine.connect() as conn:
        query = sa.select(rm.payment_rates).order_by(rm.payment_rates.c.year)
        return list(conn.execute(query).mappings())


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
    service_kind: str | None = None  # only patients receiving this municipal service now


@dataclass(frozen=True)
class WorklistItem:
    """One patient of the worklist: the patient row, the open tasks (the earliest due first)
    and the kinds of municipal service the patient receives now."""

    patient: Row
    tasks: list[Row]
    services: list[str]


def list_pathways(
    engine: Engine,
    reader: Actor,
    member_bases: Sequence[Basis],
    now: datetime,
    where: WorklistFilter,
    limit: int,
    offset: int,
) -> list[WorklistItem]:
    """The patients of the reader's organisation — those it has one of `member_bases` with
    now, unless the patient has blocked the organisation or the reader — with their open tasks
    and running municipal services (one snapshot, so they agree), the earliest due task first
    (overdue lead)."""
    p, t, r, b = rm.patients, rm.tasks, relationships, blocks
    ms = rm.municipal_services
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
    if where.service_kind:
        running = sa.select(ms.c.patient_key).where(
            ms.c.patient_key == p.c.patient_key,
            ms.c.kind == where.service_kind,
            ms.c.state == "STARTED",
        )
        query = query.where(running.exists())
    query = query.order_by(*rm.WORKLIST_ORDER)
    with snapshot(engine) as conn:
        rows = list(conn.execute(query.limit(limit).offset(offset)).mappings())
        tasks: dict[str, list[Row]] = {r["patient_key"]: [] for r in rows}
        services: dict[str, list[str]] = {r["patient_key"]: [] for r in rows}
        if tasks:
            of_page = t.c.patient_key.in_(list(tasks))
            for task in conn.execute(sa.select(t).where(of_page).order_by(t.c.due, t.c.task_id)):
                tasks[task.patient_key].append(task._mapping)
            running = sa.select(ms.c.patient_key, ms.c.kind).where(
                ms.c.patient_key.in_(list(tasks)), ms.c.state == "STARTED"
            )
            for key, kind in conn.execute(running.order_by(ms.c.patient_key, ms.c.kind)):
                if kind not in services[key]:
                    services[key].append(kind)
    return [
        WorklistItem(row, tasks[row["patient_key"]], services[row["patient_key"]]) for row in rows
    ]


@dataclass(frozen=True)
class CancerShare:
    """One hospital's pathway (pakkeforløp) in a period, as Helsedirektoratet counts it: the
    pathways whose treatment started in the period (measured), those within the standard total
    from the referral received, and those ended without treatment (not in the share)."""

    hospital_her_id: str
    cancer_pathway: str
    measured: int
    within_standard: int
    ended_without_treatment: int

    @property
    def share(self) -> float:
        """within_standard / measured; 0.0 when none was measured."""
        return self.within_standard / self.measured if self.measured else 0.0


def cancer_pathway_shares(
    engine: Engine,
    start: datetime,
    end: datetime,
    hospital_her_ids: Sequence[str] | None = None,
    municipality_her_id: str | None = None,
) -> list[CancerShare]:
    """The share of cancer pathways within standard per hospital and pathway for treatment
    starts (and ends without treatment) in [start, end): counts only, no patient named.

    `hospital_her_ids` narrows to those hospitals (the referral's receiving hospital, who
    measured it); `municipality_her_id` to patients the registers say live there (the
    municipality's figures). None: every hospital, every municipality."""
    r, p = rm.referrals, rm.patients
    since, until = utc_iso(start), utc_iso(end)
    treated = r.c.cancer_treatment_started_at
    measured = sa.and_(treated >= since, treated < until)
    ended = sa.and_(r.c.cancer_ended_at >= since, r.c.cancer_ended_at < until)

    def count(condition: Any) -> Any:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    query = (
        sa.select(
            r.c.receiver_her_id,
            r.c.cancer_pathway,
            count(measured),
            count(sa.and_(measured, r.c.cancer_within_standard.is_(True))),
            count(ended),
        )
        .where(r.c.cancer_pathway.is_not(None), sa.or_(measured, ended))
        .group_by(r.c.receiver_her_id, r.c.cancer_pathway)
        .order_by(r.c.receiver_her_id, r.c.cancer_pathway)
    )
    if hospital_her_ids is not None:
        query = query.where(r.c.receiver_her_id.in_(list(hospital_her_ids)))
    if municipality_her_id is not None:
        lives_there = sa.select(p.c.patient_key).where(
            p.c.patient_key == r.c.patient_key, p.c.municipality_her_id == municipality_her_id
        )
        query = query.where(lives_there.exists())
    with engine.connect() as conn:
        return [
            CancerShare(her_id, pathway, int(m or 0), int(w or 0), int(e or 0))
            for her_id, pathway, m, w, e in conn.execute(query)
        ]


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


# --- a municipality's monthly numbers (PathwayService/Statistics) ---------------------------
# One query per measure over the whole month range, grouped by month in SQL: the months are a
# small table of their own (one row per month, built from `Month`), joined with the rows that
# fall in each. Months without any row are left out here (the API shows them as zeros).


@dataclass(frozen=True)
class WaitingDays:
    """A month's overliggerdøgn: the patients with a paid day in it, and the days."""

    patients: int = 0
    days: int = 0


@dataclass(frozen=True)
class MessagesAnswered:
    """A month's PLO messages to the municipality, by how each was answered (AppRec)."""

    patients: int = 0
    messages: int = 0
    in_time: int = 0
    late: int = 0
    overdue: int = 0  # not answered, past due
    pending: int = 0  # not answered, not yet due


@dataclass(frozen=True)
class CancerPathwaysTreated:
    """A month's cancer pathways that reached the start of treatment, and how many in time."""

    patients: int = 0
    pathways: int = 0
    within_standard: int = 0


class days_between(FunctionElement[int]):
    """Whole days from one ISO date (text) to another: `end - start`."""

    type = sa.Integer()
    inherit_cache = True


@compiles(days_between, "sqlite")
def _days_between_sqlite(element: days_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(julianday({end}) - julianday({start}) AS INTEGER)"


@compiles(days_between, "postgresql")
def _days_between_postgresql(element: days_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST({end} AS DATE) - CAST({start} AS DATE))"


def _months(months: Sequence[Month], **columns: Callable[[Month], str]) -> sa.Subquery:
    """The months as a table: `month` (its label) and the named columns (text)."""
    named = {"month": lambda m: m.label, **columns}

    def row(m: Month) -> sa.Select[Any]:
        cells: list[sa.ColumnElement[Any]] = [
            sa.cast(sa.literal(value(m)), sa.String).label(n) for n, value in named.items()
        ]
        return sa.select(*cells)

    return sa.union_all(*(row(m) for m in months)).subquery("months")


def _by_month(conn: Connection, query: sa.Select[Any]) -> dict[str, Row]:
    return {row["month"]: row for row in conn.execute(query).mappings()}


def _count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def waiting_days(
    engine: Engine, municipality: str, months: Sequence[Month], today: date
) -> dict[Month, WaitingDays]:
    """The overliggerdøgn the municipality pays for, per month: each payable readiness period
    (the regulation's conditions met: `not_payable` empty) whose payer is the municipality (the
    registers' oppholdskommune, as GetPathway's payments say), each day in the month it falls
    in; a period still running counts today's døgn too (rules.payment_until)."""
    p = rm.payments
    mo = _months(
        months,
        first=lambda m: m.first_day.isoformat(),
        after=lambda m: m.next().first_day.isoformat(),
    )
    end = sa.func.coalesce(p.c.ends_on, (today + timedelta(days=1)).isoformat())
    start_in = sa.case((p.c.ready_on > mo.c.first, p.c.ready_on), else_=mo.c.first)
    end_in = sa.case((end < mo.c.after, end), else_=mo.c.after)
    payer = sa.and_(p.c.payer_her_id == municipality, p.c.not_payable == "")
    overlaps = sa.and_(p.c.ready_on < mo.c.after, end > mo.c.first, p.c.ready_on < end)
    query = (
        sa.select(
            mo.c.month,
            sa.func.count(sa.distinct(p.c.patient_key)).label("patients"),
            sa.func.sum(days_between(start_in, end_in)).label("days"),
        )
        .select_from(mo.join(p, overlaps))
        .where(payer)
        .group_by(mo.c.month)
    )
    with snapshot(engine) as conn:
        found = _by_month(conn, query)
    return {
        m: WaitingDays(int(r["patients"]), int(r["days"] or 0))
        for m in months
        if (r := found.get(m.label)) is not None
    }


def messages_answered(
    engine: Engine, municipality: str, months: Sequence[Month], now: datetime
) -> dict[Month, MessagesAnswered]:
    """The PLO messages sent to the municipality, per month sent (Oslo), by how it answered
    each: with an AppRec by its due time (rules.toml message_receipt), later, or not yet (past
    due at `now`, or still within it)."""
    m = rm.messages
    mo = _months(months, starts=lambda x: x.starts_at, ends=lambda x: x.next().starts_at)
    stamp = utc_iso(now)
    answered = m.c.answered_at.is_not(None)
    query = (
        sa.select(
            mo.c.month,
            sa.func.count(sa.distinct(m.c.patient_key)).label("patients"),
            sa.func.count().label("messages"),
            _count(sa.and_(answered, m.c.answered_at <= m.c.receipt_due)).label("in_time"),
            _count(sa.and_(answered, m.c.answered_at > m.c.receipt_due)).label("late"),
            _count(sa.and_(~answered, m.c.receipt_due < stamp)).label("overdue"),
            _count(sa.and_(~answered, m.c.receipt_due >= stamp)).label("pending"),
        )
        .select_from(mo.join(m, sa.and_(m.c.sent_at >= mo.c.starts, m.c.sent_at < mo.c.ends)))
        .where(m.c.to_her_id == municipality)
        .group_by(mo.c.month)
    )
    with snapshot(engine) as conn:
        found = _by_month(conn, query)
    return {
        x: MessagesAnswered(
            *(int(r[k]) for k in ("patients", "messages", "in_time", "late", "overdue", "pending"))
        )
        for x in months
        if (r := found.get(x.label)) is not None
    }


def cancer_pathways_treated(
    engine: Engine, municipality: str, months: Sequence[Month]
) -> dict[Month, CancerPathwaysTreated]:
    """The cancer pathways of the municipality's residents (the registers' residence when
    treatment started) that reached the start of treatment, per month (Oslo), and how many of
    them within the standard total from the referral received, as Helsedirektoratet measures a
    pathway (the projector's `cancer_within_standard`; a segment may have run late). A pathway
    ended without treatment is not measured."""
    r, rel = rm.referrals, relationships
    reached = r.c.cancer_treatment_started_at
    resident = sa.select(rel.c.patient_key).where(
        rel.c.patient_key == r.c.patient_key,
        rel.c.her_id == municipality,
        rel.c.basis == Basis.RESIDENCE_MUNICIPALITY.value,
        rel.c.valid_from <= reached,
        sa.or_(rel.c.valid_to.is_(None), rel.c.valid_to > reached),
    )
    mo = _months(months, starts=lambda x: x.starts_at, ends=lambda x: x.next().starts_at)
    query = (
        sa.select(
            mo.c.month,
            sa.func.count(sa.distinct(r.c.patient_key)).label("patients"),
            sa.func.count().label("pathways"),
            _count(r.c.cancer_within_standard.is_(True)).label("within_standard"),
        )
        .select_from(mo.join(r, sa.and_(reached >= mo.c.starts, reached < mo.c.ends)))
        .where(r.c.cancer_pathway.is_not(None), reached.is_not(None), resident.exists())
        .group_by(mo.c.month)
    )
    with snapshot(engine) as conn:
        found = _by_month(conn, query)
    return {
        x: CancerPathwaysTreated(int(f["patients"]), int(f["pathways"]), int(f["within_standard"]))
        for x in months
        if (f := found.get(x.label)) is not None
    }
