"""Cancer pathways as Helsedirektoratet measures them, the shorter assessment deadline when
serious illness is suspected, a pathway ended without treatment and a rejected referral
corrected and resent — on real parts: gRPC over loopback, the event stores (SQLite and
PostgreSQL), the relays, RabbitMQ, the projector and PathwayService."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, timedelta

import grpc
import pytest

from carepath.v1 import common_pb2, pathway_pb2, pathway_pb2_grpc, referrals_pb2, referrals_pb2_grpc
from shared.ids import FNR_SYSTEM
from shared.times import OSLO
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_GP, OTHER_HOSPITAL
from tests.support import NOW, Harness, auth, events_in, make_fnr, meta, wait_for

FNR = make_fnr(14, 2, 58, 310)
PATIENT = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=FNR)
M = referrals_pb2
REJECTED = common_pb2.AppRec(
    status=common_pb2.APP_REC_STATUS_REJECTED,
    errors=[common_pb2.AppRecError(code="E10", description="Ugyldig meldingsformat")],
)
OK = common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK)


@pytest.fixture(autouse=True)
def registered(system: Harness) -> None:
    """The patient lives in the municipality and has the GP office as fastlege."""
    system.register({"system": FNR_SYSTEM, "value": FNR}, municipality=MUNICIPALITY.her_id, gp=GP)


@pytest.fixture
def referrals(system: Harness) -> referrals_pb2_grpc.ReferralServiceStub:
    return referrals_pb2_grpc.ReferralServiceStub(system.channel(system.referrals_server))


@pytest.fixture
def pathway(system: Harness) -> pathway_pb2_grpc.PathwayServiceStub:
    return pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server))


def send(
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    days_ago: float,
    cancer: int = M.CANCER_PATHWAY_COLORECTAL,
    priority: int = M.REFERRAL_PRIORITY_URGENT,
) -> str:
    sent = referrals.SendReferral(
        M.SendReferralRequest(
            metadata=meta("send", days=-days_ago),
            patient=PATIENT,
            receiver_her_id=HOSPITAL.her_id,
            reason="Blod i avføringen, vekttap, jernmangelanemi.",
            priority=priority,
            cancer_pathway=cancer,
        ),
        metadata=auth(GP),
    )
    return str(sent.referral_id)


def receipt(
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    rid: str,
    days_ago: float,
    apprec: common_pb2.AppRec = OK,
    by: object = HOSPITAL,
) -> M.Referral:
    reply: M.Referral = referrals.RecordReferralReceipt(
        M.RecordReferralReceiptRequest(
            metadata=meta(f"rcpt-{days_ago}", days=-days_ago), referral_id=rid, receipt=apprec
        ),
        metadata=auth(by),  # type: ignore[arg-type]
    )
    return reply


def milestone(
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    rid: str,
    which: int,
    days_ago: float,
    treatment: int = 0,
) -> M.Referral:
    reply: M.Referral = referrals.RecordCancerPathwayMilestone(
        M.RecordCancerPathwayMilestoneRequest(
            metadata=meta(f"milestone-{which}", days=-days_ago),
            referral_id=rid,
            milestone=which,
            treatment=treatment,
        ),
        metadata=auth(HOSPITAL),
    )
    return reply


def get_pathway(pathway: pathway_pb2_grpc.PathwayServiceStub) -> pathway_pb2.Pathway:
    reply: pathway_pb2.Pathway = pathway.GetPathway(
        pathway_pb2.GetPathwayRequest(
            patient=PATIENT, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
        ),
        metadata=auth(GP),
    )
    return reply


def pathway_where(
    pathway: pathway_pb2_grpc.PathwayServiceStub, holds: Callable[[pathway_pb2.Pathway], bool]
) -> Callable[[], pathway_pb2.Pathway | None]:
    def check() -> pathway_pb2.Pathway | None:
        try:
            reply = get_pathway(pathway)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return reply if holds(reply) else None

    return check


def with_events(n: int) -> Callable[[pathway_pb2.Pathway], bool]:
    return lambda reply: len(reply.timeline) >= n


def shares(
    pathway: pathway_pb2_grpc.PathwayServiceStub, caller: object = HOSPITAL, her_id: str = ""
) -> pathway_pb2.ListCancerPathwaySharesResponse:
    first = (NOW - timedelta(days=60)).astimezone(OSLO).date()
    last = NOW.astimezone(OSLO).date()
    reply: pathway_pb2.ListCancerPathwaySharesResponse = pathway.ListCancerPathwayShares(
        pathway_pb2.ListCancerPathwaySharesRequest(
            hospital_her_id=her_id or HOSPITAL.her_id,
            from_day=common_pb2.Date(year=first.year, month=first.month, day=first.day),
            to_day=common_pb2.Date(year=last.year, month=last.month, day=last.day),
            purpose=common_pb2.ACCESS_PURPOSE_QUALITY_IMPROVEMENT,
        ),
        metadata=auth(caller),  # type: ignore[arg-type]
    )
    return reply


def test_a_colorectal_pathway_within_its_total_though_one_segment_ran_late(
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    """Received 35 days ago; first appointment 11 days later (the segment's 9 days ran late);
    investigation completed 8 days after that (of 12), surgery decided; surgery started 13 days
    later (of 14): 32 days from receipt, within the 35-day total — within standard, and counted
    so in the hospital's share."""
    rid = send(referrals, 35.1)
    receipt(referrals, rid, 35)
    milestone(referrals, rid, M.CANCER_PATHWAY_MILESTONE_FIRST_APPOINTMENT, 24)
    milestone(
        referrals,
        rid,
        M.CANCER_PATHWAY_MILESTONE_INVESTIGATION_COMPLETED,
        16,
        M.CANCER_TREATMENT_SURGERY,
    )
    milestone(referrals, rid, M.CANCER_PATHWAY_MILESTONE_TREATMENT_START, 3)

    reply = wait_for(pathway_where(pathway, with_events(5)), what="the treatment start")
    (referral,) = reply.summary.referrals
    first = referral.cancer_milestones[0]
    assert first.late  # that segment ran late ...
    total = referral.cancer_total
    assert (total.elapsed_days, total.standard_total_days) == (32, 35)
    assert total.measured and total.within_standard  # ... the pathway is within standard
    assert not [t for t in reply.tasks if "CANCER" in pathway_pb2.TaskKind.Name(t.kind)]

    (share,) = shares(pathway).shares
    assert (share.cancer_pathway, share.measured, share.within_standard) == (
        M.CANCER_PATHWAY_COLORECTAL,
        1,
        1,
    )
    assert (share.share, share.target_share, share.target_met) == (1.0, 0.7, True)


def test_a_suspected_cancer_referral_assessed_within_its_shorter_deadline(
    system: Harness,
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    """Received yesterday: the hospital has 3 working days, not 10 (§ 2-2: sooner when
    serious illness is suspected); it assesses today, within the deadline, and the task is
    gone."""
    rid = send(referrals, 1.1)
    receipt(referrals, rid, 1)
    reply = wait_for(pathway_where(pathway, with_events(2)), what="the receipt")
    (task,) = [t for t in reply.tasks if t.kind == pathway_pb2.TASK_KIND_REFERRAL_ASSESSMENT]
    received_day = (NOW - timedelta(days=1)).astimezone(OSLO).date()
    due = task.due.ToDatetime(tzinfo=UTC).astimezone(OSLO)
    assert 3 <= (due.date() - received_day).days <= 7  # 3 working days (weekend, holidays)
    assert not task.breached and "3 virkedager" in task.description
    total = reply.summary.referrals[0].cancer_total  # the pathway's clock runs from the receipt
    assert (total.elapsed_days, total.standard_total_days, total.measured) == (1, 0, False)
    planned = (NOW + timedelta(days=5)).astimezone(OSLO).date()
    referrals.AcceptReferral(
        M.AcceptReferralRequest(
            metadata=meta("assess"),
            referral_id=rid,
            planned_date=common_pb2.Date(year=planned.year, month=planned.month, day=planned.day),
        ),
        metadata=auth(HOSPITAL),
    )
    assessed = wait_for(pathway_where(pathway, with_events(3)), what="the assessment")
    assert assessed.timeline[-1].occurred_at.ToDatetime(tzinfo=UTC) <= due
    assert not [t for t in assessed.tasks if t.kind == pathway_pb2.TASK_KIND_REFERRAL_ASSESSMENT]


def test_a_pathway_ended_without_treatment_stops_its_deadlines_and_is_not_in_the_share(
    system: Harness,
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    rid = send(referrals, 20.1)
    receipt(referrals, rid, 20)
    milestone(referrals, rid, M.CANCER_PATHWAY_MILESTONE_FIRST_APPOINTMENT, 14)
    before = events_in(system.referrals_app)
    with pytest.raises(grpc.RpcError) as refused:  # OTHER needs its note
        referrals.EndCancerPathway(
            M.EndCancerPathwayRequest(
                metadata=meta("end-other", days=-2),
                referral_id=rid,
                reason=M.CANCER_PATHWAY_END_REASON_OTHER,
            ),
            metadata=auth(HOSPITAL),
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("note:")
    with pytest.raises(grpc.RpcError) as refused:  # only the receiving hospital
        referrals.EndCancerPathway(
            M.EndCancerPathwayRequest(
                metadata=meta("end-gp", days=-2),
                referral_id=rid,
                reason=M.CANCER_PATHWAY_END_REASON_PATIENT_DECLINED,
            ),
            metadata=auth(GP),
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert events_in(system.referrals_app) == before

    ended = referrals.EndCancerPathway(
        M.EndCancerPathwayRequest(
            metadata=meta("end", days=-2),
            referral_id=rid,
            reason=M.CANCER_PATHWAY_END_REASON_CANCER_NOT_CONFIRMED,
        ),
        metadata=auth(HOSPITAL),
    )
    assert ended.cancer_end_reason == M.CANCER_PATHWAY_END_REASON_CANCER_NOT_CONFIRMED
    assert ended.state == M.REFERRAL_STATE_RECEIVED  # the referral goes on
    with pytest.raises(grpc.RpcError) as refused:
        milestone(
            referrals,
            rid,
            M.CANCER_PATHWAY_MILESTONE_INVESTIGATION_COMPLETED,
            1,
            M.CANCER_TREATMENT_SURGERY,
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    reply = wait_for(pathway_where(pathway, with_events(4)), what="the ending")
    total = reply.summary.referrals[0].cancer_total
    assert total.end_reason == M.CANCER_PATHWAY_END_REASON_CANCER_NOT_CONFIRMED
    assert not total.measured and total.HasField("ended_at")
    assert not [t for t in reply.tasks if "CANCER" in pathway_pb2.TaskKind.Name(t.kind)]
    (share,) = shares(pathway).shares
    assert (share.measured, share.ended_without_treatment, share.target_met) == (0, 1, False)


def test_a_rejected_referral_is_corrected_and_resent(
    system: Harness,
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    """The hospital's system rejects the referral (AppRec REJECTED): the GP owes a corrected
    one; the GP corrects and resends it to another hospital, which receives it."""
    rid = send(referrals, 2, cancer=0, priority=M.REFERRAL_PRIORITY_ROUTINE)
    rejected = receipt(referrals, rid, 1.9, REJECTED)
    assert rejected.state == M.REFERRAL_STATE_RECEIPT_REJECTED
    reply = wait_for(pathway_where(pathway, with_events(2)), what="the rejection")
    (task,) = reply.tasks
    assert (task.kind, task.waiting_on.her_id) == (pathway_pb2.TASK_KIND_REFERRAL_RESEND, GP.her_id)

    def resend(by: object, command_id: str, receiver: str = "") -> M.Referral:
        reply: M.Referral = referrals.ResendReferral(
            M.ResendReferralRequest(
                metadata=meta(command_id, days=-1),
                referral_id=rid,
                reason="Blod i avføringen, vekttap. Hb 9,1 (rettet henvisning).",
                receiver_her_id=receiver,
            ),
            metadata=auth(by),  # type: ignore[arg-type]
        )
        return reply

    before = events_in(system.referrals_app)
    for caller, code in (
        (OTHER_GP, grpc.StatusCode.PERMISSION_DENIED),
        (HOSPITAL, grpc.StatusCode.PERMISSION_DENIED),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            resend(caller, f"resend-{caller.her_id}", OTHER_HOSPITAL.her_id)
        assert refused.value.code() == code
    assert events_in(system.referrals_app) == before

    resent = resend(GP, "resend", OTHER_HOSPITAL.her_id)
    assert (resent.state, resent.receiver_her_id, resent.resent) == (
        M.REFERRAL_STATE_SENT,
        OTHER_HOSPITAL.her_id,
        1,
    )
    with pytest.raises(grpc.RpcError) as refused:  # it waits for its receipt now
        resend(GP, "resend-again")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    received = receipt(referrals, rid, 0.5, OK, by=OTHER_HOSPITAL)
    assert received.state == M.REFERRAL_STATE_RECEIVED

    reply = wait_for(pathway_where(pathway, with_events(4)), what="the corrected referral")
    names = [(m.name, m.to.her_id, m.receipt) for m in reply.messages]
    assert names == [
        ("Henvisning", HOSPITAL.her_id, common_pb2.APP_REC_STATUS_REJECTED),
        (
            "Henvisning (rettet og sendt på nytt)",
            OTHER_HOSPITAL.her_id,
            common_pb2.APP_REC_STATUS_OK,
        ),
    ]
    (task,) = reply.tasks
    assert (task.kind, task.waiting_on.her_id) == (
        pathway_pb2.TASK_KIND_REFERRAL_ASSESSMENT,
        OTHER_HOSPITAL.her_id,
    )


def test_only_the_hospital_itself_reads_its_cancer_pathway_figures(
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    for caller in (OTHER_HOSPITAL, GP, MUNICIPALITY):
        with pytest.raises(grpc.RpcError) as refused:
            shares(pathway, caller)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert list(shares(pathway, OTHER_HOSPITAL, OTHER_HOSPITAL.her_id).shares) == []
    with pytest.raises(grpc.RpcError) as refused:
        pathway.ListCancerPathwayShares(
            pathway_pb2.ListCancerPathwaySharesRequest(
                hospital_her_id=HOSPITAL.her_id,
                from_day=common_pb2.Date(year=2026, month=5, day=1),
                to_day=common_pb2.Date(year=2026, month=4, day=1),
                purpose=common_pb2.ACCESS_PURPOSE_QUALITY_IMPROVEMENT,
            ),
            metadata=auth(HOSPITAL),
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("to_day:")
