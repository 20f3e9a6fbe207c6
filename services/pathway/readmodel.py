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
    # The moment of death, from the registers (NULL: not dead as far as carepath knows).
    sa.Column("died_at", sa.String(32), nullable=True),
)

#: The worklist's order (ListPathways): the earliest due task first, patients with no open
#: task last, then by key. Indexed as it is written (migration 0017), so a page is read by
#: walking the index, not by sorting every patient.
WORKLIST_ORDER = (patients.c.next_due.is_(None), patients.c.next_due, patients.c.patient_key)
sa.Index("ix_pathway_patients_worklist", *WORKLIST_ORDER)

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
    # Cancer pathways measured by their total (folding.model.CancerPathwayTotal), and the
    # columns the share within standard per hospital and pathway is counted on (views.py).
    sa.Column("cancer_total", sa.JSON, nullable=True),
    sa.Column("cancer_treatment_started_at", sa.String(32), nullable=True),
    sa.Column("cancer_within_standard", sa.Boolean, nullable=True),
    sa.Column("cancer_end_reason", sa.String(30), nullable=True),
    sa.Column("cancer_ended_at", sa.String(32), nullable=True),
    # Times the GP corrected and resent the referral after a rejected receipt.
    sa.Column("resent", sa.Integer, nullable=False, server_default="0"),
    sa.Index(
        "ix_pathway_referrals_cancer_treatment", "receiver_her_id", "cancer_treatment_started_at"
    ),
    sa.Index("ix_pathway_referrals_cancer_ended", "receiver_her_id", "cancer_ended_at"),
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

stays = sa.Table(
    "pathway_stays",
    metadata,
    sa.Column("patient_key", sa.String(120), primary_key=True),
    sa.Column("stay_id", sa.String(64), primary_key=True),
    sa.Column("hospital_her_id", sa.String(20), nullable=False),
    sa.Column("ward", sa.String(200), nullable=False),
    sa.Column("admitted_at", sa.String(32), nullable=False),
    sa.Column("closed_at", sa.String(32), nullable=True),
)

#: Every PLO message between organisations with its receipt (AppRec), in the order sent.
messages = sa.Table(
    "pathway_messages",
    metadata,
    sa.Column("patient_key", sa.String(120), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.String(100), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("to_her_id", sa.String(20), nullable=False),
    sa.Column("to_kind", sa.String(20), nullable=False),
    sa.Column("sent_at", sa.String(32), nullable=False),
    sa.Column("status", sa.String(20), nullable=True),
    # When the receiver's AppRec came (clinical time), and when it was due (message_receipt).
    sa.Column("answered_at", sa.String(32), nullable=True),
    sa.Column("receipt_due", sa.String(32), nullable=True),
    sa.Index("ix_pathway_messages_receiver", "to_her_id", "sent_at"),
)

#: Each correspondence between the municipality and the GP (services/correspondence): who wrote
#: to whom and when, and for a Forespørsel its answer deadline and when it was answered (what
#: "answered in time" is counted from; indexed by receiver for the numbers per organisation).
correspondence = sa.Table(
    "pathway_correspondence",
    metadata,
    sa.Column("patient_key", sa.String(120), primary_key=True),
    sa.Column("correspondence_id", sa.String(64), primary_key=True),
    sa.Column("message_type", sa.String(40), nullable=False),
    sa.Column("from_her_id", sa.String(20), nullable=False),
    sa.Column("from_kind", sa.String(20), nullable=False),
    sa.Column("to_her_id", sa.String(20), nullable=False),
    sa.Column("to_kind", sa.String(20), nullable=False),
    sa.Column("sent_at", sa.String(32), nullable=False),
    sa.Column("answer_due", sa.String(32), nullable=True),
    sa.Column("answered_at", sa.String(32), nullable=True),
    sa.Index("ix_pathway_correspondence_to", "to_her_id", "sent_at"),
)

#: Each readiness period the municipality pays for: its first day and, once known, the first
#: day not paid (NULL: still running, so the days are counted up to the day it is read).
payments = sa.Table(
    "pathway_payments",
    metadata,
    sa.Column("patient_key", sa.String(120), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("stay_id", sa.String(64), nullable=False),
    sa.Column("municipality_her_id", sa.String(20), nullable=False),
    # The oppholdskommune on the ready day from the registers (NULL: unknown).
    sa.Column("payer_her_id", sa.String(20), nullable=True),
    sa.Column("ready_on", sa.String(10), nullable=False),
    sa.Column("ends_on", sa.String(10), nullable=True),
    # The regulation's conditions the period fails, as codes in their order, comma-separated
    # (folding.discharges.NotPayable; empty: payable), and the readiness notice's missing items.
    sa.Column("not_payable", sa.String(200), nullable=False, server_default=""),
    sa.Column("missing_content", sa.String(200), nullable=False, server_default=""),
    sa.Index("ix_pathway_payments_payer", "payer_her_id", "ready_on"),
    sa.Index("ix_pathway_payments_municipality", "municipality_her_id", "ready_on"),
)

#: The daily rate of each year (NOK per døgn): reference data, not derived from events (a
#: rebuild keeps it). Seeded from rules.toml by migration 0014; an operator adds a year with
#: `python -m services.pathway rates add` (audited). GetPathway prices the stored days with
#: it when it answers, so a rate added later prices its year's days at once.
payment_rates = sa.Table(
    "payment_rates",
    metadata,
    sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("daily_rate_nok", sa.Integer, nullable=False),
    sa.Column("source", sa.String(500), nullable=False),
    # Who added it: "rules.toml" for the seed, else the operator's HER-id; and when (UTC).
    sa.Column("added_by", sa.String(20), nullable=False),
    sa.Column("added_at", sa.String(32), nullable=False),
)

#: Each municipal service of the patient (vedtak, start, end); a death ends the running ones.
municipal_services = sa.Table(
    "pathway_municipal_services",
    metadata,
    sa.Column("patient_key", sa.String(120), primary_key=True),
    sa.Column("service_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # DECIDED | STARTED | ENDED
    sa.Column("municipality_her_id", sa.String(20), nullable=False),
    sa.Column("institution_her_id", sa.String(20), nullable=True),
    sa.Column("decided_at", sa.String(32), nullable=False),
    sa.Column("starts_on", sa.String(10), nullable=False),
    sa.Column("started_at", sa.String(32), nullable=True),
    sa.Column("ended_at", sa.String(32), nullable=True),
    sa.Column("end_reason", sa.String(30), nullable=True),
    sa.Index("ix_pathway_municipal_services_running", "kind", "state"),
)

#: The shared medication list: one row per list, its entries in list order, and each entry's
#: versions (one per change, valid from the change's clinical time) and the reconciliations,
#: so the list at any clinical time is read, not folded.
medication_lists = sa.Table(
    "pathway_medication_lists",
    metadata,
    sa.Column("patient_key", sa.String(120), primary_key=True),
    sa.Column("list_id", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)

medication_entries = sa.Table(
    "pathway_medication_entries",
    metadata,
    sa.Column("patient_key", sa.String(120), primary_key=True),
    sa.Column("entry_id", sa.String(64), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
)

medication_versions = sa.Table(
    "pathway_medication_versions",
    metadata,
    sa.Column("patient_key", sa.String(120), primary_key=True),
    sa.Column("entry_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("valid_from", sa.String(32), nullable=False),
    sa.Column("atc_code", sa.String(20), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("dose", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("source_her_id", sa.String(20), nullable=False),
    sa.Column("source_kind", sa.String(20), nullable=False),
    sa.Column("prescribed_at", sa.String(32), nullable=False),
    sa.Column("prescribed_by", sa.JSON, nullable=False),
    sa.Column("last_changed_at", sa.String(32), nullable=False),
    sa.Column("last_changed_by", sa.JSON, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("state_reason", sa.Text, nullable=True),
    sa.Index("ix_pathway_medication_versions_at", "patient_key", "entry_id", "valid_from", "seq"),
)

medication_reconciliations = sa.Table(
    "pathway_medication_reconciliations",
    metadata,
    sa.Column("patient_key", sa.String(120), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("valid_from", sa.String(32), nullable=False),
    sa.Column("reconciled_by", sa.JSON, nullable=False),
    sa.Column("sources", sa.JSON, nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Index("ix_pathway_medication_reconciliations_at", "patient_key", "valid_from", "seq"),
)

#: The fold's state of each patient (services/pathway/folding/codec.py), so the projector adds
#: a batch on top of it instead of folding the patient's whole history again.
patient_states = sa.Table(
    "pathway_patient_states",
    metadata,
    sa.Column("patient_key", sa.String(120), primary_key=True),
    sa.Column("format", sa.Integer, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
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

#: Tables derived from `pathway_events` by the fold: the pathway's, the fold's state and the
#: access facts every service's policy reads (shared.access.model). A batch rewrites a touched
#: patient's rows of REWRITTEN and appends to APPENDED; a replay rewrites both.
REWRITTEN = (
    patients,
    referrals,
    tasks,
    stays,
    messages,
    correspondence,
    payments,
    municipal_services,
    medication_lists,
    patient_states,
    access_model.relationships,
    access_model.blocks,
)
APPENDED = (timeline, medication_entries, medication_versions, medication_reconciliations)
DERIVED = (*REWRITTEN, *APPENDED)
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
