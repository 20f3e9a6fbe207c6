"""The pathway read model: every patient event (deduplicated on event_id) and what the fold
derives from them — the timeline in clinical order, each referral's state, a patient summary.

The schema is owned by Alembic (services/pathway/migrations); these Table objects describe it
for queries. Times are stored as normalised UTC ISO strings so that SQLite and PostgreSQL sort
them identically and a rebuild is byte-for-byte the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shared.envelope import Envelope

metadata = sa.MetaData()

events = sa.Table(
    "pathway_events",
    metadata,
    sa.Column("event_id", sa.String(100), primary_key=True),
    sa.Column("patient_key", sa.String(120), nullable=False, index=True),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("aggregate_id", sa.String(64), nullable=False),
    sa.Column("aggregate_version", sa.Integer, nullable=False),
    sa.Column("occurred_at", sa.String(32), nullable=False),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Column("envelope", sa.Text, nullable=False),
)

patients = sa.Table(
    "pathway_patients",
    metadata,
    sa.Column("patient_key", sa.String(120), primary_key=True),
    sa.Column("system", sa.String(60), nullable=False),
    sa.Column("value", sa.String(40), nullable=False),
    sa.Column("event_count", sa.Integer, nullable=False),
    sa.Column("open_referrals", sa.Integer, nullable=False),
    sa.Column("first_occurred_at", sa.String(32), nullable=False),
    sa.Column("last_occurred_at", sa.String(32), nullable=False),
    # The patient's municipality as last known from events (admissions, municipal actors).
    sa.Column("municipality_her_id", sa.String(20), nullable=True, index=True),
    sa.Column("open_tasks", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_due", sa.String(32), nullable=True),
    # Where the patient is now (HOSPITAL, …; UNSPECIFIED when carepath does not know).
    sa.Column("location_kind", sa.String(30), nullable=False, server_default="UNSPECIFIED"),
    sa.Column("location_her_id", sa.String(20), nullable=True),
    sa.Column("location_ward", sa.String(100), nullable=True),
    sa.Column("location_since", sa.String(32), nullable=True),
    # Start of the readiness period still running (utskrivningsklar, not yet discharged).
    sa.Column("ready_for_discharge_since", sa.String(32), nullable=True),
)

timeline = sa.Table(
    "pathway_timeline",
    metadata,
    sa.Column("patient_key", sa.String(120), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.String(100), nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("level", sa.String(20), nullable=False),
    sa.Column("actor_her_id", sa.String(20), nullable=False),
    sa.Column("actor_hpr", sa.String(20), nullable=True),
    sa.Column("occurred_at", sa.String(32), nullable=False),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Column("aggregate_id", sa.String(64), nullable=False),
    sa.Column("summary", sa.String(300), nullable=False),
)

referrals = sa.Table(
    "pathway_referrals",
    metadata,
    sa.Column("referral_id", sa.String(64), primary_key=True),
    sa.Column("patient_key", sa.String(120), nullable=False, index=True),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("priority", sa.String(20), nullable=False),
    sa.Column("cancer_pathway", sa.String(20), nullable=True),
    sa.Column("sender_her_id", sa.String(20), nullable=False),
    sa.Column("receiver_her_id", sa.String(20), nullable=False),
    sa.Column("sent_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Column("is_open", sa.Boolean, nullable=False),
    # Cancer pathways: every milestone against its standard time (fold.CancerMilestoneStatus).
    sa.Column("cancer_milestones", sa.JSON, nullable=True),
)

tasks = sa.Table(
    "pathway_tasks",
    metadata,
    sa.Column("task_id", sa.String(120), primary_key=True),
    sa.Column("patient_key", sa.String(120), nullable=False, index=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("description", sa.String(300), nullable=False),
    sa.Column("waiting_on_her_id", sa.String(20), nullable=False),
    sa.Column("waiting_on_kind", sa.String(20), nullable=False),
    sa.Column("since", sa.String(32), nullable=False),
    sa.Column("due", sa.String(32), nullable=False, index=True),
    sa.Column("aggregate_id", sa.String(64), nullable=False),
)

#: Change feed for WatchPathway: one row per patient per committed projector batch. Not
#: derived from events (rebuilds append to it), so it is not part of rebuild comparisons.
changes = sa.Table(
    "pathway_changes",
    metadata,
    sa.Column("sequence", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("patient_key", sa.String(120), nullable=False),
    sa.Column("municipality_her_id", sa.String(20), nullable=True),
    sa.Column("changed_at", sa.String(32), nullable=False),
)

#: Deadline breaches already announced with a DeadlineBreached event (once per breach).
breaches = sa.Table(
    "pathway_breaches",
    metadata,
    sa.Column("task_id", sa.String(120), primary_key=True),
    sa.Column("due", sa.String(32), primary_key=True),
    sa.Column("announced_at", sa.String(32), nullable=False),
)

audit_log = sa.Table(
    "pathway_audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("read_at", sa.String(32), nullable=False),
    sa.Column("patient_key", sa.String(120), nullable=False, index=True),
    sa.Column("actor_her_id", sa.String(20), nullable=False),
    sa.Column("actor_org_kind", sa.String(20), nullable=False),
    sa.Column("actor_hpr", sa.String(20), nullable=True),
    sa.Column("purpose", sa.String(200), nullable=False),
    sa.Column("operation", sa.String(100), nullable=False),
)

#: Tables derived from `pathway_events` by the fold (cleared and refilled per patient).
DERIVED = (timeline, referrals, tasks, patients)


def utc_iso(value: str | datetime) -> str:
    """Normalise a timestamp to 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (sortable as text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def patient_key(patient: dict[str, str]) -> str:
    return f"{patient['system']}|{patient['value']}"


def create_engine(url: str) -> Engine:
    """An engine for the read model; SQLite gets WAL and a busy timeout so the projector
    (writer) and the API (reader, audit writer) work side by side."""
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def envelope_text(envelope: Envelope) -> str:
    """How an event is stored in `pathway_events.envelope`: its public JSON."""
    return envelope.to_json().decode()


def histories(
    conn: Connection, keys: Sequence[str], recorded_by: datetime | None = None
) -> dict[str, list[Envelope]]:
    """Every stored event of these patients (only those recorded by `recorded_by`), parsed
    and upcast like any message, in chunks of 500 patients per query."""
    found: dict[str, list[Envelope]] = {key: [] for key in keys}
    for i in range(0, len(keys), 500):
        query = sa.select(events.c.patient_key, events.c.envelope).where(
            events.c.patient_key.in_(keys[i : i + 500])
        )
        if recorded_by is not None:
            query = query.where(events.c.recorded_at <= utc_iso(recorded_by))
        for key, body in conn.execute(query):
            found[key].append(Envelope.from_json(body))
    return found
