"""Discharge commands: load (or open) → change → save, idempotent on the client's command_id;
the query; and the known-stays view the rules consult (filled by `reactions.py`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from typing import Any, Self
from uuid import UUID

import sqlalchemy as sa

from services.discharges.contract import CONTRACT
from services.discharges.domain import (
    Destination,
    Discharge,
    KnownStay,
    discharge_id_for,
    require_open_stay,
)
from shared.apprec import AppRecStatus
from shared.config import Pool, StoreSettings, pool
from shared.domain import CommandContext
from shared.errors import Conflict
from shared.sql import create_tables, engine
from shared.store import CONFLICT_RETRIES, CarepathApplication, default_pool

WHAT = "discharge"

_metadata = sa.MetaData()
known_stays = sa.Table(
    "discharge_known_stays",
    _metadata,
    sa.Column("stay_id", sa.String(36), primary_key=True),
    sa.Column("patient_system", sa.String(100), nullable=False),
    sa.Column("patient_value", sa.String(20), nullable=False),
    sa.Column("hospital_her_id", sa.String(20), nullable=False),
    # Null until PatientAdmitted is seen (a later event may arrive first).
    sa.Column("municipality_her_id", sa.String(20), nullable=True),
    sa.Column("state", sa.String(10), nullable=False),
    # The stay's aggregate_version of the newest event applied.
    sa.Column("version", sa.BigInteger, nullable=False),
)


class KnownStays:
    """The stays the discharges service knows from the admissions events, in its own database.

    Every update is idempotent and order-tolerant: an event older than the row's version does
    not overwrite newer facts (CLOSED is final), and redelivery changes nothing."""

    def __init__(self, sqlalchemy_url: str = "sqlite://") -> None:
        self._engine = engine(sqlalchemy_url, pool("known-stays"))
        self._lock = threading.Lock()
        create_tables(_metadata, self._engine)

    def close(self) -> None:
        self._engine.dispose()

    def get(self, stay_id: UUID) -> KnownStay | None:
        """The stay, or None when unknown (or PatientAdmitted not seen yet)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(known_stays).where(known_stays.c.stay_id == str(stay_id))
            ).first()
        if row is None or row.municipality_her_id is None:
            return None
        return KnownStay(
            stay_id=stay_id,
            patient={"system": row.patient_system, "value": row.patient_value},
            hospital_her_id=row.hospital_her_id,
            municipality_her_id=row.municipality_her_id,
            state=row.state,
        )

    def admitted(
        self, stay_id: str, patient: dict[str, str], hospital_her_id: str, municipality: str
    ) -> None:
        """PatientAdmitted (version 1): fills what only admission knows, never newer facts."""

        def apply(row: Any) -> dict[str, Any] | None:
            if row is None:
                return {"hospital_her_id": hospital_her_id, "state": "OPEN", "version": 1}
            return {} if row.municipality_her_id is None else None

        self._upsert(stay_id, patient, {"municipality_her_id": municipality}, apply)

    def transferred(
        self, stay_id: str, patient: dict[str, str], version: int, to_hospital_her_id: str
    ) -> None:
        """PatientTransferred: the new hospital is responsible, unless a newer event was seen."""

        def apply(row: Any) -> dict[str, Any] | None:
            if row is not None and row.version >= version:
                return None
            state = row.state if row is not None else "OPEN"
            return {"hospital_her_id": to_hospital_her_id, "state": state, "version": version}

        self._upsert(stay_id, patient, {}, apply)

    def closed(self, stay_id: str, patient: dict[str, str], version: int, hospital: str) -> None:
        """StayClosed: final, whatever arrives later."""

        def apply(row: Any) -> dict[str, Any] | None:
            if row is None:
                return {"hospital_her_id": hospital, "state": "CLOSED", "version": version}
            if row.state == "CLOSED" and row.version >= version:
                return None
            return {"state": "CLOSED", "version": max(version, row.version)}

        self._upsert(stay_id, patient, {}, apply)

    def _upsert(
        self,
        stay_id: str,
        patient: dict[str, str],
        on_insert: dict[str, Any],
        apply: Callable[[Any], dict[str, Any] | None],
    ) -> None:
        """Read the row, decide with `apply` (None: nothing to do), write; a concurrent insert
        of the same stay is retried against the row it wrote."""
        table = known_stays
        for _ in range(CONFLICT_RETRIES):
            try:
                with self._lock, self._engine.begin() as conn:
                    row = conn.execute(
                        sa.select(table).where(table.c.stay_id == stay_id).with_for_update()
                    ).first()
                    values = apply(row)
                    if values is None:
                        return
                    if row is None:
                        conn.execute(
                            table.insert().values(
                                stay_id=stay_id,
                                patient_system=patient["system"],
                                patient_value=patient["value"],
                                **{"municipality_her_id": None, **on_insert, **values},
                            )
                        )
                    else:
                        conn.execute(
                            table.update()
                            .where(table.c.stay_id == stay_id)
                            .values(**on_insert, **values)
                        )
                return
            except sa.exc.IntegrityError:
                continue
        raise Conflict("the known stay changed concurrently")


class DischargesApplication(CarepathApplication):
    name = "discharges"
    contract = CONTRACT
    internal_event_types = frozenset({"DischargeOpened"})

    def __init__(self, *args: Any, stays: KnownStays | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stays = stays or KnownStays()

    @classmethod
    def from_url(cls, url: str, pool: Pool | None = None) -> Self:
        settings = StoreSettings(url, pool or default_pool())
        env = settings.eventsourcing_env(cls.name)
        return cls(env=env, stays=KnownStays(settings.sqlalchemy_url()))

    def close(self) -> None:
        super().close()
        self.stays.close()

    def _open_or_change(
        self,
        ctx: CommandContext,
        stay_id: UUID,
        action: str,
        change: Callable[[Discharge, KnownStay | None], None],
    ) -> Discharge:
        """Readiness and discharge: the first of them opens the stay's discharge (saved with its
        clinical event); a race between two first commands is retried on the stored one."""
        known = self.stays.get(stay_id)
        return self.change(
            Discharge,
            discharge_id_for(stay_id),
            ctx,
            WHAT,
            lambda d: change(d, known),
            create=lambda: Discharge.open(ctx, require_open_stay(known, stay_id, action)),
        )

    def declare_ready(self, ctx: CommandContext, stay_id: UUID) -> Discharge:
        return self._open_or_change(
            ctx,
            stay_id,
            "declare the patient ready for discharge",
            lambda d, stay: d.declare_ready(ctx, stay),
        )

    def answer_readiness(
        self, ctx: CommandContext, stay_id: UUID, can_receive: bool, receive_on: date | None
    ) -> Discharge:
        return self.change(
            Discharge,
            discharge_id_for(stay_id),
            ctx,
            WHAT,
            lambda d: d.answer_readiness(ctx, can_receive, receive_on),
        )

    def withdraw_readiness(self, ctx: CommandContext, stay_id: UUID, reason: str) -> Discharge:
        stay = self.stays.get(stay_id)
        return self.change(
            Discharge,
            discharge_id_for(stay_id),
            ctx,
            WHAT,
            lambda d: d.withdraw_readiness(ctx, stay, reason),
        )

    def discharge(
        self,
        ctx: CommandContext,
        stay_id: UUID,
        destination: Destination,
        destination_her_id: str | None,
    ) -> Discharge:
        return self._open_or_change(
            ctx,
            stay_id,
            "discharge the patient",
            lambda d, stay: d.discharge(ctx, stay, destination, destination_her_id),
        )

    def send_epicrisis(self, ctx: CommandContext, stay_id: UUID, to_her_id: str) -> Discharge:
        return self.change(
            Discharge,
            discharge_id_for(stay_id),
            ctx,
            WHAT,
            lambda d: d.send_epicrisis(ctx, to_her_id),
        )

    def record_message_receipt(
        self,
        ctx: CommandContext,
        stay_id: UUID,
        message_id: UUID,
        status: AppRecStatus,
        errors: list[dict[str, str]],
    ) -> Discharge:
        return self.change(
            Discharge,
            discharge_id_for(stay_id),
            ctx,
            WHAT,
            lambda d: d.record_message_receipt(ctx, message_id, status, errors),
        )

    def get_discharge(self, stay_id: UUID) -> Discharge:
        return self.load(Discharge, discharge_id_for(stay_id), WHAT)
