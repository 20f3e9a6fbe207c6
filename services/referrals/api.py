"""ReferralService over gRPC: translate requests into commands, referrals into replies.
Errors are raised as domain errors; the shared interceptor maps them to status codes."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import grpc

from carepath.v1 import referrals_pb2, referrals_pb2_grpc
from services.referrals.application import ReferralsApplication
from services.referrals.domain import (
    CancerMilestone,
    CancerPathway,
    CancerPathwayEndReason,
    Priority,
    Referral,
    Treatment,
)
from shared import api
from shared.access.enforce import AccessControl, Resolver, Resource
from shared.access.model import Basis, Relationship
from shared.errors import InvalidArgument, NotFound
from shared.grpc_server import current_actor

STATE_TO_PB = {
    s: referrals_pb2.ReferralState.Value(f"REFERRAL_STATE_{s}")
    for s in (
        "SENT",
        "RECEIVED",
        "RECEIPT_REJECTED",
        "ACCEPTED",
        "REJECTED",
        "FORWARDED",
        "COMPLETED",
        "CANCELLED",
    )
}
PRIORITY_FROM_PB = {
    referrals_pb2.REFERRAL_PRIORITY_ROUTINE: Priority.ROUTINE,
    referrals_pb2.REFERRAL_PRIORITY_URGENT: Priority.URGENT,
}
PRIORITY_TO_PB = {v: k for k, v in PRIORITY_FROM_PB.items()}
CANCER_FROM_PB = {
    referrals_pb2.CANCER_PATHWAY_BREAST: CancerPathway.BREAST,
    referrals_pb2.CANCER_PATHWAY_COLORECTAL: CancerPathway.COLORECTAL,
    referrals_pb2.CANCER_PATHWAY_LYMPHOMA: CancerPathway.LYMPHOMA,
}
CANCER_TO_PB = {v: k for k, v in CANCER_FROM_PB.items()}
MILESTONE_FROM_PB = {
    referrals_pb2.CancerPathwayMilestone.Value(f"CANCER_PATHWAY_MILESTONE_{m}"): m
    for m in CancerMilestone
}
MILESTONE_TO_PB = {v: k for k, v in MILESTONE_FROM_PB.items()}
TREATMENT_FROM_PB = {
    referrals_pb2.CancerTreatment.Value(f"CANCER_TREATMENT_{t}"): t for t in Treatment
}
TREATMENT_TO_PB = {v: k for k, v in TREATMENT_FROM_PB.items()}
END_REASON_FROM_PB = {
    referrals_pb2.CancerPathwayEndReason.Value(f"CANCER_PATHWAY_END_REASON_{r}"): r
    for r in CancerPathwayEndReason
}
END_REASON_TO_PB = {v: k for k, v in END_REASON_FROM_PB.items()}


def referral_to_pb(referral: Referral) -> referrals_pb2.Referral:
    pb = referrals_pb2.Referral(
        referral_id=str(referral.id),
        patient=api.patient_to_pb(referral.patient),
        state=STATE_TO_PB[referral.state.value],
        priority=PRIORITY_TO_PB[referral.priority],
        cancer_pathway=(
            CANCER_TO_PB[referral.cancer_pathway]
            if referral.cancer_pathway
            else referrals_pb2.CANCER_PATHWAY_UNSPECIFIED
        ),
        sender_her_id=referral.sender_her_id,
        receiver_her_id=referral.receiver_her_id,
        sent_at=api.timestamp(referral.sent_at),
        version=referral.version,
        resent=referral.resent,
    )
    if referral.received_at:
        pb.received_at.CopyFrom(api.timestamp(referral.received_at))
    if referral.last_receipt:
        pb.last_receipt.CopyFrom(api.receipt_to_pb(referral.last_receipt))
    if referral.planned_date:
        pb.planned_date.CopyFrom(api.date_to_pb(referral.planned_date))
    for milestone, reached_at in referral.cancer_milestones.items():
        pb.cancer_milestones.add(
            milestone=MILESTONE_TO_PB[CancerMilestone(milestone)],
            reached_at=api.timestamp(reached_at),
        )
    if referral.cancer_treatment:
        pb.cancer_treatment = TREATMENT_TO_PB[referral.cancer_treatment]
    if referral.cancer_end_reason and referral.cancer_ended_at:
        pb.cancer_end_reason = END_REASON_TO_PB[referral.cancer_end_reason]
        pb.cancer_ended_at.CopyFrom(api.timestamp(referral.cancer_ended_at))
    return pb


def _referral_id(request: Any) -> UUID:
    return api.uuid_field(request.referral_id, "referral_id")


class ReferralServicer(referrals_pb2_grpc.ReferralServiceServicer):
    def __init__(self, app: ReferralsApplication) -> None:
        self._app = app

    def SendReferral(
        self, request: referrals_pb2.SendReferralRequest, context: grpc.ServicerContext
    ) -> referrals_pb2.Referral:
        ctx = api.command_context(request, current_actor())
        patient = api.patient(request)
        receiver = api.her_id(request.receiver_her_id, "receiver_her_id")
        reason = api.text(request.reason, "reason")
        if request.priority not in PRIORITY_FROM_PB:
            raise InvalidArgument("priority", "is required (ROUTINE or URGENT)")
        cancer = None
        if request.cancer_pathway:
            if request.cancer_pathway not in CANCER_FROM_PB:
                raise InvalidArgument("cancer_pathway", "is not a known cancer pathway")
            cancer = CANCER_FROM_PB[request.cancer_pathway]
        referral = self._app.send_referral(
            ctx, patient, receiver, reason, PRIORITY_FROM_PB[request.priority], cancer
        )
        return referral_to_pb(referral)

    def RecordReferralReceipt(
        self, request: referrals_pb2.RecordReferralReceiptRequest, context: grpc.ServicerContext
    ) -> referrals_pb2.Referral:
        ctx = api.command_context(request, current_actor())
        referral_id = _referral_id(request)
        status, errors = api.receipt_from_request(request)
        referral = self._app.record_receipt(ctx, referral_id, status, errors)
        return referral_to_pb(referral)

    def AcceptReferral(
        self, request: referrals_pb2.AcceptReferralRequest, context: grpc.ServicerContext
    ) -> referrals_pb2.Referral:
        ctx = api.command_context(request, current_actor())
        referral_id = _referral_id(request)
        if not request.HasField("planned_date"):
            raise InvalidArgument("planned_date", "is required")
        planned = api.date_from_pb(request.planned_date, "planned_date")
        return referral_to_pb(self._app.accept(ctx, referral_id, planned))

    def RejectReferral(
        self, request: referrals_pb2.RejectReferralRequest, context: grpc.ServicerContext
    ) -> referrals_pb2.Referral:
        ctx = api.command_context(request, current_actor())
        referral_id = _referral_id(request)
        reason = api.text(request.reason, "reason")
        return referral_to_pb(self._app.reject(ctx, referral_id, reason))

    def ForwardReferral(
        self, request: referrals_pb2.ForwardReferralRequest, context: grpc.ServicerContext
    ) -> referrals_pb2.Referral:
        ctx = api.command_context(request, current_actor())
        referral_id = _referral_id(request)
        new_receiver = api.her_id(request.new_receiver_her_id, "new_receiver_her_id")
        reason = api.text(request.reason, "reason")
        return referral_to_pb(self._app.forward(ctx, referral_id, new_receiver, reason))

    def CompleteReferral(
        self, request: referrals_pb2.CompleteReferralRequest, context: grpc.ServicerContext
    ) -> referrals_pb2.Referral:
        ctx = api.command_context(request, current_actor())
        return referral_to_pb(self._app.complete(ctx, _referral_id(request)))

    def RecordCancerPathwayMilestone(
        self,
        request: referrals_pb2.RecordCancerPathwayMilestoneRequest,
        context: grpc.ServicerContext,
    ) -> referrals_pb2.Referral:
        ctx = api.command_context(request, current_actor())
        referral_id = _referral_id(request)
        if request.milestone not in MILESTONE_FROM_PB:
            raise InvalidArgument(
                "milestone",
                "is required (FIRST_APPOINTMENT, INVESTIGATION_COMPLETED or TREATMENT_START)",
            )
        treatment = None
        if request.treatment:
            if request.treatment not in TREATMENT_FROM_PB:
                raise InvalidArgument("treatment", "is not a known treatment")
            treatment = TREATMENT_FROM_PB[request.treatment]
        referral = self._app.record_cancer_milestone(
            ctx, referral_id, MILESTONE_FROM_PB[request.milestone], treatment
        )
        return referral_to_pb(referral)

    def EndCancerPathway(
        self, request: referrals_pb2.EndCancerPathwayRequest, context: grpc.ServicerContext
    ) -> referrals_pb2.Referral:
        ctx = api.command_context(request, current_actor())
        referral_id = _referral_id(request)
        if request.reason not in END_REASON_FROM_PB:
            raise InvalidArgument(
                "reason",
                "is required (CANCER_NOT_CONFIRMED, PATIENT_DECLINED, PATIENT_DIED or OTHER)",
            )
        note = request.note.strip() or None
        referral = self._app.end_cancer_pathway(
            ctx, referral_id, END_REASON_FROM_PB[request.reason], note
        )
        return referral_to_pb(referral)

    def ResendReferral(
        self, request: referrals_pb2.ResendReferralRequest, context: grpc.ServicerContext
    ) -> referrals_pb2.Referral:
        ctx = api.command_context(request, current_actor())
        referral_id = _referral_id(request)
        reason = api.text(request.reason, "reason")
        receiver = (
            api.her_id(request.receiver_her_id, "receiver_her_id")
            if request.receiver_her_id
            else None
        )
        return referral_to_pb(self._app.resend(ctx, referral_id, reason, receiver))

    def CancelReferral(
        self, request: referrals_pb2.CancelReferralRequest, context: grpc.ServicerContext
    ) -> referrals_pb2.Referral:
        ctx = api.command_context(request, current_actor())
        referral_id = _referral_id(request)
        reason = api.text(request.reason, "reason")
        return referral_to_pb(self._app.cancel(ctx, referral_id, reason))

    def GetReferral(
        self, request: referrals_pb2.GetReferralRequest, context: grpc.ServicerContext
    ) -> referrals_pb2.Referral:
        return referral_to_pb(self._app.get_referral(_referral_id(request)))


SERVICE_NAMES = (referrals_pb2.DESCRIPTOR.services_by_name["ReferralService"].full_name,)


def resolvers(app: ReferralsApplication) -> dict[str, Resolver]:
    """A referral's patient and its own parties: the sender (GP office) and the receiving
    hospital now, from the referral itself."""

    def referral(referral_id: UUID) -> Resource | None:
        try:
            found = app.get_referral(referral_id)
        except NotFound:
            return None
        return Resource(
            found.patient,
            [
                Relationship.party(found.sender_her_id, Basis.REFERRAL_SENDER),
                Relationship.party(found.receiver_her_id, Basis.REFERRAL_RECEIVER),
            ],
        )

    return {"referral": referral}


def register(app: ReferralsApplication, access: AccessControl) -> Any:
    def _register(server: grpc.Server) -> None:
        referrals_pb2_grpc.add_ReferralServiceServicer_to_server(ReferralServicer(app), server)

    return _register
