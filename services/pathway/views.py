"""Queries on the read model (the only place that reads it), and the audit trail of reads."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from services.pathway import readmodel as rm
from services.pathway.fold import derive_rows
from shared.auth import Actor
from shared.envelope import Envelope

Row = Mapping[Any, Any]


@dataclass(frozen=True)
class PathwayView:
    patient: Row
    timeline: Sequence[Row]
    referrals: Sequence[Row]
    tasks: Sequence[Row]


def get_pathway(engine: Engine, key: str, as_of: datetime | None = None) -> PathwayView | None:
    """The patient's pathway now (from the read model), or as it was known at `as_of`:
    only the events recorded by then, folded exactly as the projector folds them."""
    if as_of is not None:
        return _pathway_as_of(engine, key, as_of)
    with engine.connect() as conn:
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
        )


def _pathway_as_of(engine: Engine, key: str, as_of: datetime) -> PathwayView | None:
    with engine.connect() as conn:
        bodies = conn.execute(
            sa.select(rm.events.c.envelope).where(
                rm.events.c.patient_key == key, rm.events.c.recorded_at <= rm.utc_iso(as_of)
            )
        ).scalars()
        history = [Envelope(**json.loads(body)) for body in bodies]
    derived = derive_rows(key, history)
    if not derived:
        return None
    return PathwayView(
        patient=derived["pathway_patients"][0],
        timeline=derived["pathway_timeline"],
        referrals=derived["pathway_referrals"],
        tasks=derived["pathway_tasks"],
    )


def record_read(engine: Engine, key: str, actor: Actor, purpose: str, operation: str) -> None:
    """Every read of a patient's pathway leaves a row: who, organisation, purpose, when."""
    with engine.begin() as conn:
        conn.execute(
            rm.audit_log.insert().values(
                read_at=rm.utc_iso(datetime.now(UTC)),
                patient_key=key,
                actor_her_id=actor.her_id,
                actor_org_kind=actor.org_kind.value,
                actor_hpr=actor.hpr,
                purpose=purpose,
                operation=operation,
            )
        )


def reads_of(engine: Engine, key: str) -> list[RowMapping]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(rm.audit_log)
                .where(rm.audit_log.c.patient_key == key)
                .order_by(rm.audit_log.c.id)
            ).mappings()
        )
