"""Correspondence commands: open (create once) or load → change → save, idempotent on the
client's command_id; and the query. What the registers say about the patient is handed in by
the caller (`Registered`, read from the access facts the registry's events make)."""

from __future__ import annotations

from uuid import UUID

from services.correspondence.contract import CONTRACT
from services.correspondence.domain import (
    Correspondence,
    MessageType,
    Registered,
    correspondence_id_for,
)
from shared.apprec import AppRecStatus
from shared.domain import CommandContext
from shared.store import CarepathApplication

WHAT = "correspondence"


class CorrespondenceApplication(CarepathApplication):
    name = "correspondence"
    contract = CONTRACT

    def send_message(
        self,
        ctx: CommandContext,
        patient: dict[str, str],
        kind: MessageType,
        text: str,
        registered: Registered,
        to_her_id: str | None = None,
    ) -> Correspondence:
        return self.create_once(
            Correspondence,
            correspondence_id_for(ctx.actor.her_id, ctx.command_id),
            ctx,
            WHAT,
            lambda: Correspondence.send(ctx, patient, kind, text, registered, to_her_id),
        )

    def answer_request(
        self, ctx: CommandContext, correspondence_id: UUID, kind: MessageType, text: str
    ) -> Correspondence:
        return self.change(
            Correspondence,
            correspondence_id,
            ctx,
            WHAT,
            lambda c: c.answer(ctx, kind, text),
        )

    def record_message_receipt(
        self,
        ctx: CommandContext,
        correspondence_id: UUID,
        message_id: UUID,
        status: AppRecStatus,
        errors: list[dict[str, str]],
    ) -> Correspondence:
        return self.change(
            Correspondence,
            correspondence_id,
            ctx,
            WHAT,
            lambda c: c.record_message_receipt(ctx, message_id, status, errors),
        )

    def get_correspondence(self, correspondence_id: UUID) -> Correspondence:
        return self.load(Correspondence, correspondence_id, WHAT)
