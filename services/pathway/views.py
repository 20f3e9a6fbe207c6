"""Queries on the read model (the only place that reads it), and the audit trail of reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from services.pathway import readmodel as rm
from shared.auth import Actor


@dataclass(frozen=True)
class PathwayView:
    patient: RowMapping
    timeline: list[RowMapping]
    referrals: list[RowMapping]


def get_pathway(engine: Engine, key: str) -> PathwayView | None:
    with engine.connect() as conn:
        patient = (
            conn.execute(sa.select(rm.patients).where(rm.patients.c.patient_key == key))
            .mappings()
            .first()
        )
        if patient is None:
            return None
        timeline = list(
            conn.execute(
                sa.select(rm.timeline)
                .where(rm.timeline.c.patient_key == key)
                .order_by(rm.timeline.c.position)
            ).mappings()
        )
        referrals = list(
            conn.execute(
                sa.select(rm.referrals)
                .where(rm.referrals.c.patient_key == key)
                .order_by(rm.referrals.c.sent_at.desc(), rm.referrals.c.referral_id.desc())
            ).mappings()
        )
    return PathwayView(patient=patient, timeline=timeline, referrals=referrals)


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
