"""The stays the discharges service knows, in its own database: what the discharge rules
consult (is the stay open, which hospital is responsible, which municipality is home), filled
by `reactions.py` from the admissions events. The service's own SQL adapter, apart from its
commands (`application.py`) and its domain."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from services.discharges.domain import KnownStay
from shared.config import pool
from shared.errors import Conflict
from shared.sql import create_tables, engine
from shared.store import CONFLICT_RETRIES

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
