"""The referral (henvisning): sent by a GP to a hospital, received with an AppRec, assessed
(accepted with a planned date, or rejected), forwarded to another hospital
(viderehenvisning), completed or cancelled.

Each public method checks the rule and who may act, then triggers a past-tense event; the
`@event` methods only apply state, so replaying history never re-checks rules.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from shared import rules
from shared.actors import OrgKind
from shared.apprec import AppRecStatus, check_receipt
from shared.domain import CarepathAggregate, CommandContext
from shared.errors import InvalidArgument, InvalidTransition, NotPermitted


class ReferralState(enum.StrEnum):
    SENT = "SENT"
    RECEIVED = "RECEIVED"
    RECEIPT_REJECTED = "RECEIPT_REJECTED"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    FORWARDED = "FORWARDED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


OPEN_STATES = frozenset(
    {ReferralState.SENT, ReferralState.RECEIVED, ReferralState.FORWARDED, ReferralState.ACCEPTED}
)
AWAITING_RECEIPT = frozenset({ReferralState.SENT, ReferralState.FORWARDED})


class Priority(enum.StrEnum):
    ROUTINE = "ROUTINE"
    URGENT = "URGENT"


class CancerPathway(enum.StrEnum):
    BREAST = "BREAST"
    COLORECTAL = "COLORECTAL"
    LYMPHOMA = "LYMPHOMA"


class CancerMilestone(enum.StrEnum):
    """The milestones of a cancer pathway, in the order they are reached."""

    FIRST_APPOINTMENT = "FIRST_APPOINTMENT"
    INVESTIGATION_COMPLETED = "INVESTIGATION_COMPLETED"
    TREATMENT_START = "TREATMENT_START"


class Treatment(enum.StrEnum):
    """The first treatment of a cancer pathway; each has its own standard time."""

    SURGERY = "SURGERY"
    DRUGS = "DRUGS"
    RADIOTHERAPY = "RADIOTHERAPY"


class CancerPathwayEndReason(enum.StrEnum):
    """Why a cancer pathway ended without treatment (pakkeforløp slutt; rules.toml)."""

    CANCER_NOT_CONFIRMED = "CANCER_NOT_CONFIRMED"
    PATIENT_DECLINED = "PATIENT_DECLINED"
    PATIENT_DIED = "PATIENT_DIED"
    OTHER = "OTHER"


#: States in which the cancer pathway runs: it starts when the hospital receives the referral
#: and goes on after the referral is completed (treatment usually follows an admission).
CANCER_PATHWAY_RUNNING = frozenset(
    {ReferralState.RECEIVED, ReferralState.ACCEPTED, ReferralState.COMPLETED}
)


def referral_id_for(sender_her_id: str, command_id: str) -> UUID:
    """The same send command from the same GP office always names the same referral."""
    return uuid5(NAMESPACE_URL, f"carepath:referral:{sender_her_id}:{command_id}")


class Referral(CarepathAggregate):
    """A referral from a GP office to a hospital."""

    @classmethod
    def send(
        cls,
        ctx: CommandContext,
        patient: dict[str, str],
        receiver_her_id: str,
        reason: str,
        priority: Priority,
        cancer_pathway: CancerPathway | None,
    ) -> Referral:
        if ctx.actor.org_kind is not OrgKind.GP:
            raise NotPermitted("only a GP office may send a referral")
        if receiver_her_id == ctx.actor.her_id:
            raise InvalidArgument("receiver_her_id", "must differ from the sender's HER-id")
        return cls(
            meta=ctx.meta(patient),
            sender_her_id=ctx.actor.her_id,
            receiver_her_id=receiver_her_id,
            reason=reason,
            priority=priority.value,
            cancer_pathway=cancer_pathway.value if cancer_pathway else None,
        )

    @staticmethod
    def create_id(meta: dict[str, Any], sender_her_id: str, **_: Any) -> UUID:
        return referral_id_for(sender_her_id, meta["command_id"])

    @event("ReferralSent")
    def __init__(
        self,
        meta: dict[str, Any],
        sender_her_id: str,
        receiver_her_id: str,
        reason: str,
        priority: str,
        cancer_pathway: str | None,
    ) -> None:
        self.patient: dict[str, str] = meta["patient"]
        self.sender_her_id = sender_her_id
        self.receiver_her_id = receiver_her_id
        self.reason = reason
        self.priority = Priority(priority)
        self.cancer_pathway = CancerPathway(cancer_pathway) if cancer_pathway else None
        self.state = ReferralState.SENT
        self.sent_at: str = meta["occurred_at"]
        self.received_at: str | None = None
        self.last_receipt: dict[str, Any] | None = None
        self.planned_date: date | None = None
        self.cancer_started_at: str | None = None
        self.cancer_milestones: dict[str, str] = {}
        self.cancer_treatment: Treatment | None = None
        self.cancer_end_reason: CancerPathwayEndReason | None = None
        self.cancer_ended_at: str | None = None
        self.resent = 0
        self._handled(meta)

    # --- rules -------------------------------------------------------------------------------

    def _require_state(self, allowed: frozenset[ReferralState], action: str) -> None:
        if self.state not in allowed:
            raise InvalidTransition("the referral", self.state.value, action)

    def _require_receiver(self, ctx: CommandContext, action: str) -> None:
        if ctx.actor.org_kind is not OrgKind.HOSPITAL or ctx.actor.her_id != self.receiver_her_id:
            raise NotPermitted(f"only the receiving hospital may {action}")

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    # --- commands ------------------------------------------------------------------------------

    def record_receipt(
        self, ctx: CommandContext, status: AppRecStatus, errors: list[dict[str, str]]
    ) -> None:
        self._require_receiver(ctx, "record the receipt")
        self._require_state(AWAITING_RECEIPT, "record a receipt")
        check_receipt(status, errors)
        self._receipt_recorded(
            meta=ctx.meta(self.patient),
            receiver_her_id=ctx.actor.her_id,
            status=status.value,
            errors=errors,
        )

    @event("ReferralReceiptRecorded")
    def _receipt_recorded(
        self, meta: dict[str, Any], receiver_her_id: str, status: str, errors: list[dict[str, str]]
    ) -> None:
        self.last_receipt = {"status": status, "errors": errors}
        if AppRecStatus(status) is AppRecStatus.REJECTED:
            self.state = ReferralState.RECEIPT_REJECTED
        else:
            self.state = ReferralState.RECEIVED
            self.received_at = meta["occurred_at"]
            if self.cancer_pathway and self.cancer_started_at is None:
                self.cancer_started_at = meta["occurred_at"]
        self._handled(meta)

    def accept(self, ctx: CommandContext, planned_date: date) -> None:
        self._require_receiver(ctx, "assess the referral")
        self._require_state(frozenset({ReferralState.RECEIVED}), "accept")
        if planned_date < ctx.occurred_at.date():
            raise InvalidArgument("planned_date", "must not be before the assessment")
        self._accepted(meta=ctx.meta(self.patient), planned_date=planned_date)

    @event("ReferralAccepted")
    def _accepted(self, meta: dict[str, Any], planned_date: date) -> None:
        self.state = ReferralState.ACCEPTED
        self.planned_date = planned_date
        self._handled(meta)

    def reject(self, ctx: CommandContext, reason: str) -> None:
        self._require_receiver(ctx, "assess the referral")
        self._require_state(frozenset({ReferralState.RECEIVED}), "reject")
        self._rejected(meta=ctx.meta(self.patient), reason=reason)

    @event("ReferralRejected")
    def _rejected(self, meta: dict[str, Any], reason: str) -> None:
        self.state = ReferralState.REJECTED
        self._handled(meta)

    def forward(self, ctx: CommandContext, new_receiver_her_id: str, reason: str) -> None:
        self._require_receiver(ctx, "forward the referral")
        self._require_state(frozenset({ReferralState.RECEIVED, ReferralState.ACCEPTED}), "forward")
        if new_receiver_her_id == self.receiver_her_id:
            raise InvalidArgument(
                "new_receiver_her_id", "must differ from the current receiving hospital"
            )
        self._forwarded(
            meta=ctx.meta(self.patient),
            from_her_id=self.receiver_her_id,
            to_her_id=new_receiver_her_id,
            reason=reason,
        )

    @event("ReferralForwarded")
    def _forwarded(
        self, meta: dict[str, Any], from_her_id: str, to_her_id: str, reason: str
    ) -> None:
        self.state = ReferralState.FORWARDED
        self.receiver_her_id = to_her_id
        self.received_at = None
        self.planned_date = None
        self._handled(meta)

    def complete(self, ctx: CommandContext) -> None:
        self._require_receiver(ctx, "complete the referral")
        self._require_state(frozenset({ReferralState.ACCEPTED}), "complete")
        self._completed(meta=ctx.meta(self.patient))

    @event("ReferralCompleted")
    def _completed(self, meta: dict[str, Any]) -> None:
        self.state = ReferralState.COMPLETED
        self._handled(meta)

    def cancel(self, ctx: CommandContext, reason: str) -> None:
        if ctx.actor.org_kind is not OrgKind.GP or ctx.actor.her_id != self.sender_her_id:
            raise NotPermitted("only the referring GP office may cancel the referral")
        self._require_state(OPEN_STATES, "cancel")
        self._cancelled(meta=ctx.meta(self.patient), reason=reason)

    @event("ReferralCancelled")
    def _cancelled(self, meta: dict[str, Any], reason: str) -> None:
        self.state = ReferralState.CANCELLED
        self._handled(meta)

    def resend(self, ctx: CommandContext, reason: str, receiver_her_id: str | None) -> None:
        """The referring GP office corrects a referral whose receipt was REJECTED and sends it
        again (to the same hospital, or the one named): a new message awaiting its receipt."""
        if ctx.actor.org_kind is not OrgKind.GP or ctx.actor.her_id != self.sender_her_id:
            raise NotPermitted("only the referring GP office may correct and resend the referral")
        self._require_state(frozenset({ReferralState.RECEIPT_REJECTED}), "resend")
        receiver = receiver_her_id or self.receiver_her_id
        if receiver == ctx.actor.her_id:
            raise InvalidArgument("receiver_her_id", "must differ from the sender's HER-id")
        self._resent(
            meta=ctx.meta(self.patient),
            previous_receiver_her_id=self.receiver_her_id,
            receiver_her_id=receiver,
            reason=reason,
        )

    @event("ReferralResent")
    def _resent(
        self, meta: dict[str, Any], previous_receiver_her_id: str, receiver_her_id: str, reason: str
    ) -> None:
        self.state = ReferralState.SENT
        self.receiver_her_id = receiver_her_id
        self.reason = reason
        self.resent += 1
        self._handled(meta)

    def end_cancer_pathway(
        self, ctx: CommandContext, reason: CancerPathwayEndReason, note: str | None
    ) -> None:
        """The receiving hospital ends the cancer pathway without treatment (pakkeforløp
        slutt) with a coded reason; the referral itself goes on."""
        self._require_receiver(ctx, "end the cancer pathway")
        self._require_running_pathway("end the cancer pathway")
        if CancerMilestone.TREATMENT_START.value in self.cancer_milestones:
            raise InvalidTransition(
                "the cancer pathway", "with its treatment started", "end without treatment"
            )
        if reason is CancerPathwayEndReason.OTHER and not note:
            raise InvalidArgument("note", "is required when the reason is OTHER")
        self._require_not_before_milestones(ctx)
        self._cancer_pathway_ended(meta=ctx.meta(self.patient), reason=reason.value, note=note)

    @event("CancerPathwayEnded")
    def _cancer_pathway_ended(self, meta: dict[str, Any], reason: str, note: str | None) -> None:
        self.cancer_end_reason = CancerPathwayEndReason(reason)
        self.cancer_ended_at = meta["occurred_at"]
        self._handled(meta)

    def _require_running_pathway(self, action: str) -> None:
        if self.cancer_pathway is None:
            raise InvalidTransition("the referral", "without a cancer pathway", action)
        if self.cancer_end_reason is not None:
            raise InvalidTransition(
                "the cancer pathway", f"ended ({self.cancer_end_reason.value})", action
            )
        self._require_state(CANCER_PATHWAY_RUNNING, action)

    def _require_not_before_milestones(self, ctx: CommandContext) -> None:
        times = [self.cancer_started_at, *self.cancer_milestones.values()]
        if ctx.occurred_at < max(datetime.fromisoformat(t) for t in times if t):
            raise InvalidArgument(
                "metadata.occurred_at", "must not be before the pathway's previous milestone"
            )

    def record_cancer_milestone(
        self, ctx: CommandContext, milestone: CancerMilestone, treatment: Treatment | None
    ) -> None:
        """The hospital records that the patient reached the next milestone of the cancer
        pathway. Milestones come in order, once each; the investigation ends with the first
        treatment chosen (its standard time sets the last segment's limit)."""
        self._require_receiver(ctx, "record a cancer-pathway milestone")
        self._require_running_pathway("record a cancer-pathway milestone")
        assert self.cancer_pathway is not None
        expected = next((m for m in CancerMilestone if m.value not in self.cancer_milestones), None)
        if milestone is not expected:
            reached = ", ".join(self.cancer_milestones) or "none"
            raise InvalidTransition(
                "the cancer pathway", f"at milestones reached: {reached}", f"record {milestone}"
            )
        self._require_not_before_milestones(ctx)
        allowed = rules.cancer_treatments(self.cancer_pathway.value)
        if milestone is CancerMilestone.INVESTIGATION_COMPLETED and treatment is None:
            raise InvalidArgument(
                "treatment", f"is required when the investigation ends (one of {allowed})"
            )
        if milestone is CancerMilestone.FIRST_APPOINTMENT and treatment is not None:
            raise InvalidArgument("treatment", "is decided when the investigation ends")
        if treatment is not None and treatment.value.lower() not in allowed:
            raise InvalidArgument(
                "treatment", f"has no standard time in this pathway (one of {allowed})"
            )
        chosen = treatment or self.cancer_treatment
        self._cancer_milestone_reached(
            meta=ctx.meta(self.patient),
            milestone=milestone.value,
            treatment=chosen.value if chosen else None,
        )

    @event("CancerPathwayMilestoneReached")
    def _cancer_milestone_reached(
        self, meta: dict[str, Any], milestone: str, treatment: str | None
    ) -> None:
        self.cancer_milestones[milestone] = meta["occurred_at"]
        if treatment:
            self.cancer_treatment = Treatment(treatment)
        self._handled(meta)
