"""Discharge commands: load (or open) → change → save, idempotent on the client's command_id;
and the query. The rules consult the stays the service knows (`known_stays.py`, filled by
`reactions.py`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, Self
from uuid import UUID

from services.discharges.contract import CONTRACT
from services.discharges.domain import (
    Destination,
    Discharge,
    KnownStay,
    ReadinessContent,
    discharge_id_for,
    require_open_stay,
)
from services.discharges.known_stays import KnownStays
from shared.apprec import AppRecStatus
from shared.config import Pool, StoreSettings
from shared.domain import CommandContext
from shared.store import CarepathApplication, default_pool

WHAT = "discharge"


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

    def declare_ready(
        self, ctx: CommandContext, stay_id: UUID, content: ReadinessContent | None = None
    ) -> Discharge:
        said = content or ReadinessContent()
        return self._open_or_change(
            ctx,
            stay_id,
            "declare the patient ready for discharge",
            lambda d, stay: d.declare_ready(ctx, stay, said),
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
