"""The pathway read model: every patient event (deduplicated on event_id) and what the fold
derives from them — the timeline in clinical order, each referral's state, a patient summary.

The schema is owned by Alembic (services/pathway/migrations); these Table objects describe it
for queries. Times are stored as normalised UTC ISO strings so that SQLite and PostgreSQL sort
them identically and a rebuild is byte-for-byte the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shared import config, sql
from shared.access import model as access_model
from shared.events import Envelope
from shared.times import utc_iso

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
    # The municipality the patient lives in, from the registers (never from events' fields).
    sa.Column("municipality_her_id", sa.String(20), nullable=True, index=True),
    sa.Column("open_tasks", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_due", sa.String(32), nullable=True),
    # Where the patient is now (HOSPITAL, …; UNSPECIFIED when carepath does not know).
    sa.Column("location_kind", sa.String(30), nullable=False, server_default="UNSPECIFIED"),
    sa.Column("location_her_id", sa.String(20), nullable=True),
    sa.Column("location_ward", sa.String(200), nullable=True),
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

#: Tables derived from `pathway_events` by the fold (cleared and refilled per patient): the
#: pathway's, and the access facts every service's policy reads (shared.access.model).
DERIVED = (timeline, referrals, tasks, patients, access_model.relationships, access_model.blocks)
#: The organisation directory, derived from the registry's events about no patient (stored
#: under this key in `pathway_events`).
DIRECTORY_KEY = "~directory"
DIRECTORY = access_model.organisations


def patient_key(patient: dict[str, str]) -> str:
    """A patient's key; events about no patient (the directory) are kept under DIRECTORY_KEY."""
    return f"{patient['system']}|{patient['value']}" if patient else DIRECTORY_KEY


def create_engine(url: str, role: str = "serve") -> Engine:
    """An engine for the read model: the projector (writer) and the API (reader) work side by
    side (shared.sql.engine: WAL on SQLite; on PostgreSQL the pool of the process's role,
    `read-model-<role>` of shared.config.POOLS: serve, project, reactions, tool)."""
    return sql.engine(url, config.pool(f"read-model-{role}"))


def envelope_text(envelope: Envelope) -> str:
    """How an event is stored in `pathway_events.envelope`: its public JSON."""
    return envelope.to_json().decode()


def histories(
    conn: Connection, keys: Sequence[str], recorded_by: datetime | None = None
) -> dict[str, list[Envelope]]:
    """Every stored event of these patients (only those recorded by `recorded_by`), upcast and
    typed (Envelope.from_stored: they were checked when they arrived), in chunks of 500
    patients per query."""
    found: dict[str, list[Envelope]] = {key: [] for key in keys}
    for i in range(0, len(keys), 500):
        query = sa.select(events.c.patient_key, events.c.envelope).where(
            events.c.patient_key.in_(keys[i : i + 500])
        )
        if recorded_by is not None:
            query = query.where(events.c.recorded_at <= utc_iso(recorded_by))
        for key, body in conn.execute(query):
            found[key].append(Envelope.from_stored(body))
    return found
