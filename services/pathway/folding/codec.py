"""The folded state as text, for the read model to keep between batches (pure, no I/O).

The text is deterministic (the same state gives the same text, keys sorted), so a rebuild's
states equal the live ones byte for byte. FORMAT names the shape: a state stored in another
format is not read (the projector replays that patient's history instead), so changing the
fold only needs FORMAT raised.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any
from uuid import UUID

from services.pathway.folding.medications import MedicationProjection
from services.pathway.folding.model import (
    CorrespondenceView,
    Death,
    DischargeView,
    MunicipalServiceView,
    PloMessage,
    ReadyPeriod,
    ReferralView,
    StayView,
)
from services.pathway.folding.pathway import Folded, PatientState
from services.pathway.folding.registers import BlockChange, Registration
from shared.medication_list import Entry, EntryState, MedicationListView, Reconciliation

#: 2: a PLO message keeps when it was answered (answered_at); 3: the stay's
#: municipal_services_likely, the readiness notice's missing content; 4: the municipal
#: services and the death; 5: referrals keep their cancer pathway's end and resends, the
#: medication list its latest reconciliation (the GP's reconciliation task after a discharge).
FORMAT = 5


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not part of the folded state")


def dump(state: PatientState) -> str:
    medications = state.medications
    if medications is not None and medications.pending:
        raise ValueError("the medication versions must be taken (stored) first")
    plain = {
        "count": state.count,
        "patient": state.patient,
        "first_occurred_at": state.first_occurred_at,
        "last": state.last,
        "medication_names": state.medication_names,
        "referrals": _aggregates(state.referrals),
        "stays": _aggregates(state.stays),
        "discharges": _aggregates(state.discharges),
        "services": _aggregates(state.services),
        "death": None if state.death is None else dataclasses.astuple(state.death),
        "correspondence": _aggregates(state.correspondence),
        "medications": None if medications is None else _medication_list(medications.view),
        "registrations": [dataclasses.astuple(r) for r in state.registrations],
        "blocks": [dataclasses.astuple(b) for b in state.blocks],
    }
    # Keys sorted: an actor's keys come in the order of the message or of the store. Nothing
    # the fold keeps in a dict depends on its order (ordered things are lists).
    return json.dumps(
        plain, default=_plain, ensure_ascii=False, separators=(",", ":"), sort_keys=True
    )


def _aggregates(folded: dict[str, Folded]) -> list[Any]:
    return [
        [key, f.version, None if f.view is None else dataclasses.asdict(f.view)]
        for key, f in folded.items()
    ]


def _medication_list(view: MedicationListView) -> dict[str, Any]:
    return {
        "list_id": view.list_id,
        "patient": dict(view.patient),
        "version": view.version,
        "entries": [
            {**dataclasses.asdict(e), "prescribed_by": dict(e.prescribed_by),
             "last_changed_by": dict(e.last_changed_by)}
            for e in view.entries.values()
        ],
        "last_reconciliation": _reconciliation(view.last_reconciliation),
    }  # fmt: skip


def _reconciliation(rec: Reconciliation | None) -> dict[str, Any] | None:
    if rec is None:
        return None
    return {
        "reconciled_at": rec.reconciled_at,
        "reconciled_by": dict(rec.reconciled_by),
        "sources": list(rec.sources),
        "note": rec.note,
    }


def load(text: str) -> PatientState:
    plain = json.loads(text)
    last = plain["last"]
    meds = plain["medications"]
    return PatientState(
        count=plain["count"],
        patient=plain["patient"],
        first_occurred_at=plain["first_occurred_at"],
        last=None if last is None else (last[0], last[1], last[2], last[3]),
        medication_names=plain["medication_names"],
        referrals=_load_aggregates(plain["referrals"], _referral),
        stays=_load_aggregates(plain["stays"], _stay),
        discharges=_load_aggregates(plain["discharges"], _discharge),
        services=_load_aggregates(plain["services"], lambda d: MunicipalServiceView(**d)),
        death=None if plain["death"] is None else Death(*plain["death"]),
        # A state stored before the correspondence service existed has none.
        correspondence=_load_aggregates(plain.get("correspondence", []), _correspondence),
        medications=None if meds is None else MedicationProjection(_load_list(meds)),
        registrations=[Registration(*r) for r in plain["registrations"]],
        blocks=[BlockChange(*b) for b in plain["blocks"]],
    )


def _load_aggregates(items: list[Any], view: Any) -> dict[str, Folded]:
    return {key: Folded(version, None if v is None else view(v)) for key, version, v in items}


def _referral(d: dict[str, Any]) -> ReferralView:
    d["messages"] = [PloMessage(**m) for m in d["messages"]]
    d["receivers"] = [tuple(r) for r in d["receivers"]]
    return ReferralView(**d)


def _stay(d: dict[str, Any]) -> StayView:
    d["messages"] = {k: PloMessage(**m) for k, m in d["messages"].items()}
    d["hospitals"] = [tuple(h) for h in d["hospitals"]]
    return StayView(**d)


def _discharge(d: dict[str, Any]) -> DischargeView:
    d["periods"] = [ReadyPeriod(**p) for p in d["periods"]]
    d["messages"] = {k: PloMessage(**m) for k, m in d["messages"].items()}
    return DischargeView(**d)


def _correspondence(d: dict[str, Any]) -> CorrespondenceView:
    d["messages"] = {k: PloMessage(**m) for k, m in d["messages"].items()}
    return CorrespondenceView(**d)


def _load_list(d: dict[str, Any]) -> MedicationListView:
    view = MedicationListView(UUID(d["list_id"]), d["patient"], d["version"])
    for e in d["entries"]:
        e["prescribed_at"] = datetime.fromisoformat(e["prescribed_at"])
        e["last_changed_at"] = datetime.fromisoformat(e["last_changed_at"])
        e["state"] = EntryState(e["state"])
        view.entries[e["entry_id"]] = Entry(**e)
    rec = d.get("last_reconciliation")
    if rec is not None:
        view.last_reconciliation = Reconciliation(
            reconciled_at=datetime.fromisoformat(rec["reconciled_at"]),
            reconciled_by=rec["reconciled_by"],
            sources=tuple(rec["sources"]),
            note=rec["note"],
        )
    return view
