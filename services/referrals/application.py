"""Referral commands: load → change → save, idempotent on the client's command_id."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from services.referrals.contract import CONTRACT
from services.referrals.domain import (
    CancerMilestone,
    CancerPathway,
    CancerPathwayEndReason,
    Priority,
    Referral,
    Treatment,
    referral_id_for,
)
from shared.apprec import AppRecStatus
from shared.domain import CommandContext
from shared.store import CarepathApplication

WHAT = "referral"


class ReferralsApplication(CarepathApplication):
    name = "referrals"
    contract = CONTRACT

    def send_referral(
        self,
        ctx: CommandContext,
        patient: dict[str, str],
        receiver_her_id: str,
        reason: str,
        priority: Priority,
        cancer_pathway: CancerPathway | None,
    ) -> Referral:
        referral_id = referral_id_for(ctx.actor.her_id, ctx.command_id)
        return self.create_once(
            Referral,
            referral_id,
            ctx,
            WHAT,
            lambda: Referral.send(ctx, patient, receiver_her_id, reason, priority, cancer_pathway),
        )

    def record_receipt(
        self,
        ctx: CommandContext,
        referral_id: UUID,
        status: AppRecStatus,
        errors: list[dict[str, str]],
    ) -> Referral:
        return self.change(
            Referral,
            referral_id,
            ctx,
            WHAT,
            lambda r: r.record_receipt(ctx, status, errors),
        )

    def accept(self, ctx: CommandContext, referral_id: UUID, planned_date: date) -> Referral:
        return self.change(Referral, referral_id, ctx, WHAT, lambda r: r.accept(ctx, planned_date))

    def reject(self, ctx: CommandContext, referral_id: UUID, reason: str) -> Referral:
        return self.change(Referral, referral_id, ctx, WHAT, lambda r: r.reject(ctx, reason))

    def forward(
        self, ctx: CommandContext, referral_id: UUID, new_receiver_her_id: str, reason: str
    ) -> Referral:
        return self.change(
            Referral,
            referral_id,
            ctx,
            WHAT,
            lambda r: r.forward(ctx, new_receiver_her_id, reason),
        )

    def complete(self, ctx: CommandContext, referral_id: UUID) -> Referral:
        return self.change(Referral, referral_id, ctx, WHAT, lambda r: r.complete(ctx))

    def record_cancer_milestone(
        self,
        ctx: CommandContext,
        referral_id: UUID,
        milestone: CancerMilestone,
        treatment: Treatment | None,
    ) -> Referral:
        return self.change(
            Referral,
            referral_id,
            ctx,
            WHAT,
            lambda r: r.record_cancer_milestone(ctx, milestone, treatment),
        )

    def end_cancer_pathway(
        self,
        ctx: CommandContext,
        referral_id: UUID,
        reason: CancerPathwayEndReason,
        note: str | None,
    ) -> Referral:
        return self.change(
            Referral, referral_id, ctx, WHAT, lambda r: r.end_cancer_pathway(ctx, reason, note)
        )

    def resend(
        self, ctx: CommandContext, referral_id: UUID, reason: str, receiver_her_id: str | None
    ) -> Referral:
        return self.change(
            Referral, referral_id, ctx, WHAT, lambda r: r.resend(ctx, reason, receiver_her_id)
        )

    def cancel(self, ctx: CommandContext, referral_id: UUID, reason: str) -> Referral:
        return self.change(Referral, referral_id, ctx, WHAT, lambda r: r.cancel(ctx, reason))

    def get_referral(self, referral_id: UUID) -> Referral:
        return self.load(Referral, referral_id, WHAT)
