"""The row mapping: a patient's folded state → the read model's rows, by table name.

The projector writes these rows; an `as_of` answer (services/pathway/views.py) builds the same
rows in memory from a replay, so both say exactly the same. Tables of readmodel.REWRITTEN are
written whole for a touched patient (their size is the answer's, not the history's); the
timeline and the medication versions (readmodel.APPENDED) grow by what a batch added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from services.pathway.folding.discharges import payment_spans
from services.pathway.folding.medications import EntryVersion, ReconciliationVersion
from services.pathway.folding.model import CorrespondenceView, ReferralView
from services.pathway.folding.pathway import (
    PatientPathway,
    PatientState,
    TimelineEntry,
    pathway_of,
    replay,
)
from services.pathway.relations import block_rows, relationship_rows
from shared import rules
from shared.access.model import blocks, relationships
from shared.events import Envelope
from shared.times import utc_iso

Row = dict[str, object]
Rows = dict[str, list[Row]]


def timeline_rows(key: str, start: int, entries: Sequence[TimelineEntry]) -> list[Row]:
    """Timeline rows from position `start` on."""
    return [
        {
            "patient_key": key,
            "position": position,
            "event_id": e.event_id,
            "event_type": e.event_type,
            "source": e.source,
            "level": e.actor.get("org_kind", ""),
            "actor_her_id": e.actor.get("her_id", ""),
            "actor_hpr": e.actor.get("hpr"),
            "occurred_at": utc_iso(e.occurred_at),
            "recorded_at": utc_iso(e.recorded_at),
            "aggregate_id": e.aggregate_id,
            "summary": summary[:300],
        }
        for position, (e, summary) in enumerate(entries, start)
    ]


def answer_rows(key: str, state: PatientState) -> Rows:
    """The rows of readmodel.REWRITTEN for one patient: the pathway's (when there is a clinical
    event) and the access facts' (always: a patient the registers name may not have a pathway
    yet); the fold's state itself is the projector's to store. Takes the medication versions
    made since the last call (they are appended: `medication_rows`)."""
    versions = state.medications.take() if state.medications else []
    pathway = pathway_of(state)
    found: Rows = {
        relationships.name: relationship_rows(key, pathway),
        blocks.name: block_rows(key, pathway.blocks),
    }
    if state.patient is not None and state.last is not None:
        found |= _pathway_rows(key, state, pathway)
    return found | medication_rows(key, versions)


def _pathway_rows(key: str, state: PatientState, pathway: PatientPathway) -> Rows:
    found: Rows = {
        "pathway_patients": [_patient_row(key, state, pathway)],
        "pathway_referrals": [_referral_row(key, r) for r in pathway.referrals],
        "pathway_tasks": [{"patient_key": key, **vars(t)} for t in pathway.tasks],
        "pathway_stays": [
            {
                "patient_key": key,
                "stay_id": s.stay_id,
                "hospital_her_id": s.hospital_her_id,
                "ward": s.ward,
                "admitted_at": s.admitted_at,
                "closed_at": s.closed_at,
            }
            for s in pathway.stays
        ],
        "pathway_messages": [
            {
                "patient_key": key,
                "position": position,
                **vars(m),
                "receipt_due": utc_iso(rules.receipt_due(datetime.fromisoformat(m.sent_at))),
            }
            for position, m in enumerate(pathway.messages)
        ],
        "pathway_payments": _payment_rows(key, pathway),
        "pathway_municipal_services": [
            {
                "patient_key": key,
                "service_id": s.service_id,
                "kind": s.kind,
                "state": s.state,
                "municipality_her_id": s.municipality_her_id,
                "institution_her_id": s.institution_her_id,
                "decided_at": s.decided_at,
                "starts_on": s.starts_on,
                "started_at": s.started_at,
                "ended_at": s.ended_at,
                "end_reason": s.end_reason,
            }
            for s in pathway.services
        ],
        "pathway_correspondence": [_correspondence_row(key, c) for c in pathway.correspondence],
    }
    if state.medications is not None:
        view = state.medications.view
        found["pathway_medication_lists"] = [
            {"patient_key": key, "list_id": str(view.list_id), "version": view.version}
        ]
    return found


def _patient_row(key: str, state: PatientState, pathway: PatientPathway) -> Row:
    assert state.patient is not None and state.last is not None
    return {
        "patient_key": key,
        "system": state.patient["system"],
        "value": state.patient["value"],
        "event_count": state.count,
        "open_referrals": pathway.open_referrals,
        "first_occurred_at": state.first_occurred_at,
        "last_occurred_at": state.last[0],
        "municipality_her_id": pathway.municipality_her_id,
        "open_tasks": len(pathway.tasks),
        "next_due": pathway.tasks[0].due if pathway.tasks else None,
        "location_kind": pathway.location.kind,
        "location_her_id": pathway.location.her_id,
        "location_ward": pathway.location.ward,
        "location_since": pathway.location.since,
        "ready_for_discharge_since": max(
            (d.ready.ready_at for d in pathway.discharges if d.ready), default=None
        ),
        "died_at": pathway.death.at if pathway.death else None,
    }


def _referral_row(key: str, r: ReferralView) -> Row:
    return {
        "referral_id": r.referral_id,
        "patient_key": key,
        "state": r.state,
        "priority": r.priority,
        "cancer_pathway": r.cancer_pathway,
        "sender_her_id": r.sender_her_id,
        "receiver_her_id": r.receiver_her_id,
        "sent_at": r.sent_at,
        "updated_at": r.updated_at,
        "is_open": r.is_open,
        "cancer_milestones": [vars(m) for m in r.cancer_milestones()] or None,
        **_cancer_total_columns(r),
        "resent": r.resent,
    }


def _cancer_total_columns(r: ReferralView) -> Row:
    """The pathway by its total, and what the share within standard is counted on: the
    treatment's start and whether it was within the standard total (measured pathways), or
    the end without treatment (not measured)."""
    total = r.cancer_total()
    return {
        "cancer_total": vars(total) if total else None,
        "cancer_treatment_started_at": total.treatment_started_at if total else None,
        "cancer_within_standard": total.within_standard if total else None,
        "cancer_end_reason": r.cancer_end_reason,
        "cancer_ended_at": r.cancer_ended_at,
    }


def _correspondence_row(key: str, c: CorrespondenceView) -> Row:
    due = None
    if c.request_message_id is not None:  # a Forespørsel: its answer is due
        due = utc_iso(rules.correspondence_answer_due(datetime.fromisoformat(c.sent_at)))
    return {
        "patient_key": key,
        "correspondence_id": c.correspondence_id,
        "message_type": c.message_type,
        "from_her_id": c.from_her_id,
        "from_kind": c.from_kind,
        "to_her_id": c.to_her_id,
        "to_kind": c.to_kind,
        "sent_at": c.sent_at,
        "answer_due": due,
        "answered_at": c.answered_at,
    }


def _payment_rows(key: str, pathway: PatientPathway) -> list[Row]:
    """Each readiness period, with its payer: the municipality the registers say the patient
    stayed or lived in on the ready day (computed here, so a later register event rewrites it),
    and the regulation's conditions it fails (from the discharge and its stay)."""
    stays = {s.stay_id: s for s in pathway.stays}
    spans = [span for d in pathway.discharges for span in payment_spans(d, stays.get(d.stay_id))]
    return [
        {
            "patient_key": key,
            "position": position,
            "stay_id": span.stay_id,
            "municipality_her_id": span.municipality_her_id,
            "payer_her_id": pathway.register.municipality_on(span.ready_on),
            "ready_on": span.ready_on.isoformat(),
            "ends_on": span.ends_on.isoformat() if span.ends_on else None,
            "not_payable": ",".join(span.not_payable),
            "missing_content": ",".join(span.missing_content),
        }
        for position, span in enumerate(spans)
    ]


def _actor(actor: Mapping[str, str]) -> dict[str, str]:
    """An actor as stored (JSON): its keys sorted, for an actor's keys come in the message's
    order live and in the store's order on a rebuild, and the two must store the same text."""
    return dict(sorted(actor.items()))


def medication_rows(key: str, versions: Sequence[EntryVersion | ReconciliationVersion]) -> Rows:
    """The rows the medication versions add (readmodel.APPENDED)."""
    entries: list[Row] = []
    changes: list[Row] = []
    reconciliations: list[Row] = []
    for v in versions:
        if isinstance(v, ReconciliationVersion):
            rec = v.reconciliation
            reconciliations.append(
                {
                    "patient_key": key,
                    "seq": v.seq,
                    "valid_from": v.valid_from,
                    "reconciled_by": _actor(rec.reconciled_by),
                    "sources": list(rec.sources),
                    "note": rec.note,
                }
            )
            continue
        e = v.entry
        if v.position is not None:
            entries.append({"patient_key": key, "entry_id": v.entry_id, "position": v.position})
        changes.append(
            {
                "patient_key": key,
                "entry_id": v.entry_id,
                "seq": v.seq,
                "valid_from": v.valid_from,
                "atc_code": e.atc_code,
                "name": e.name,
                "dose": e.dose,
                "reason": e.reason,
                "source_her_id": e.source_her_id,
                "source_kind": e.source_kind,
                "prescribed_at": utc_iso(e.prescribed_at),
                "prescribed_by": _actor(e.prescribed_by),
                "last_changed_at": utc_iso(e.last_changed_at),
                "last_changed_by": _actor(e.last_changed_by),
                "state": e.state.value,
                "state_reason": e.state_reason,
            }
        )
    return {
        "pathway_medication_entries": entries,
        "pathway_medication_versions": changes,
        "pathway_medication_reconciliations": reconciliations,
    }


def replayed(key: str, history: Sequence[Envelope]) -> tuple[PatientState, Rows]:
    """The state and every row of one patient from all of their events (a replay)."""
    state, timeline = replay(history)
    rows = answer_rows(key, state)
    if timeline:
        rows["pathway_timeline"] = timeline_rows(key, 0, timeline)
    return state, rows


def derive_rows(key: str, history: Sequence[Envelope]) -> Rows:
    """Every row of one patient from all of their events (a replay)."""
    return replayed(key, history)[1]
