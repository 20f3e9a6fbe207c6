"""The referral lifecycle as the GP and the hospitals live it (in-memory store)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from services.referrals.api import resolvers
from services.referrals.application import ReferralsApplication
from services.referrals.domain import (
    CancerMilestone,
    CancerPathway,
    CancerPathwayEndReason,
    Priority,
    ReferralState,
    Treatment,
)
from shared.access.model import Basis
from shared.apprec import AppRecStatus
from shared.errors import InvalidArgument, InvalidTransition, NotFound, NotPermitted
from shared.ids import FNR_SYSTEM
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_GP, OTHER_HOSPITAL
from tests.support import ctx, events_in, make_fnr

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(12, 3, 42, 480)}
T0 = datetime(2026, 9, 1, 8, 30, tzinfo=UTC)
FIRST = CancerMilestone.FIRST_APPOINTMENT
DONE = CancerMilestone.INVESTIGATION_COMPLETED
START = CancerMilestone.TREATMENT_START


@pytest.fixture
def app() -> ReferralsApplication:
    return ReferralsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def send(app: ReferralsApplication, command_id: str = "send-1", **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {
        "patient": PATIENT,
        "receiver_her_id": HOSPITAL.her_id,
        "reason": "Blod i avføringen",
        "priority": Priority.URGENT,
        "cancer_pathway": CancerPathway.COLORECTAL,
    }
    args.update(kw)
    return app.send_referral(ctx(GP, command_id, T0), **args)  # type: ignore[arg-type]


def test_a_referral_is_received_accepted_and_completed(app: ReferralsApplication) -> None:
    r = send(app)
    assert r.state is ReferralState.SENT
    r = app.record_receipt(ctx(HOSPITAL, "rcpt", T0, hours=1), r.id, AppRecStatus.OK, [])
    assert r.state is ReferralState.RECEIVED
    r = app.accept(ctx(HOSPITAL, "acc", T0, hours=24), r.id, date(2026, 9, 10))
    assert (r.state, r.planned_date) == (ReferralState.ACCEPTED, date(2026, 9, 10))
    r = app.complete(ctx(HOSPITAL, "done", T0, hours=300), r.id)
    assert r.state is ReferralState.COMPLETED
    assert r.version == 4


def test_a_receipt_with_errors_in_part_still_counts_as_received(
    app: ReferralsApplication,
) -> None:
    r = send(app)
    errors = [{"code": "E35", "description": "Vedlegg mangler"}]
    r = app.record_receipt(
        ctx(HOSPITAL, "rcpt", T0, hours=1), r.id, AppRecStatus.OK_ERROR_IN_PART, errors
    )
    assert r.state is ReferralState.RECEIVED
    assert r.last_receipt == {"status": "OK_ERROR_IN_PART", "errors": errors}


def test_a_rejected_receipt_closes_the_referral(app: ReferralsApplication) -> None:
    r = send(app)
    errors = [{"code": "E10", "description": "Ugyldig meldingsformat"}]
    r = app.record_receipt(ctx(HOSPITAL, "rcpt", T0, hours=1), r.id, AppRecStatus.REJECTED, errors)
    assert r.state is ReferralState.RECEIPT_REJECTED
    with pytest.raises(InvalidTransition, match="RECEIPT_REJECTED"):
        app.accept(ctx(HOSPITAL, "acc", T0, hours=2), r.id, date(2026, 9, 10))


@pytest.mark.parametrize(
    ("status", "errors", "field"),
    [
        (AppRecStatus.OK, [{"code": "E1", "description": "x"}], "receipt.errors"),
        (AppRecStatus.REJECTED, [], "receipt.errors"),
        (AppRecStatus.OK_ERROR_IN_PART, [{"code": "", "description": "x"}], "receipt.errors[0]"),
    ],
)
def test_an_apprec_must_carry_errors_exactly_when_not_ok(
    app: ReferralsApplication, status: AppRecStatus, errors: list[dict[str, str]], field: str
) -> None:
    r = send(app)
    before = events_in(app)
    with pytest.raises(InvalidArgument, match=re.escape(field)):
        app.record_receipt(ctx(HOSPITAL, "rcpt", T0, hours=1), r.id, status, errors)
    assert events_in(app) == before


def test_a_forwarded_referral_waits_for_the_new_hospitals_receipt(
    app: ReferralsApplication,
) -> None:
    r = send(app)
    app.record_receipt(ctx(HOSPITAL, "rcpt", T0, hours=1), r.id, AppRecStatus.OK, [])
    r = app.forward(
        ctx(HOSPITAL, "fwd", T0, hours=2), r.id, OTHER_HOSPITAL.her_id, "Kortere ventetid"
    )
    assert (r.state, r.receiver_her_id) == (ReferralState.FORWARDED, OTHER_HOSPITAL.her_id)
    with pytest.raises(NotPermitted, match="receiving hospital"):
        app.accept(ctx(HOSPITAL, "late", T0, hours=3), r.id, date(2026, 9, 20))
    r = app.record_receipt(ctx(OTHER_HOSPITAL, "rcpt-b", T0, hours=3), r.id, AppRecStatus.OK, [])
    r = app.accept(ctx(OTHER_HOSPITAL, "acc-b", T0, hours=4), r.id, date(2026, 9, 20))
    assert r.state is ReferralState.ACCEPTED


def test_forwarding_to_the_same_hospital_is_refused(app: ReferralsApplication) -> None:
    r = send(app)
    app.record_receipt(ctx(HOSPITAL, "rcpt", T0, hours=1), r.id, AppRecStatus.OK, [])
    with pytest.raises(InvalidArgument, match="new_receiver_her_id"):
        app.forward(ctx(HOSPITAL, "fwd", T0, hours=2), r.id, HOSPITAL.her_id, "x")


def test_only_the_referring_gp_may_cancel(app: ReferralsApplication) -> None:
    r = send(app)
    with pytest.raises(NotPermitted):
        app.cancel(ctx(OTHER_GP, "c1", T0, hours=1), r.id, "feil pasient")
    with pytest.raises(NotPermitted):
        app.cancel(ctx(HOSPITAL, "c2", T0, hours=1), r.id, "feil pasient")
    r = app.cancel(ctx(GP, "c3", T0, hours=1), r.id, "Bedring")
    assert r.state is ReferralState.CANCELLED


def test_a_cancelled_referral_cannot_be_received(app: ReferralsApplication) -> None:
    r = send(app)
    app.cancel(ctx(GP, "c", T0, hours=1), r.id, "Bedring")
    with pytest.raises(
        InvalidTransition, match="cannot record a receipt: the referral is CANCELLED"
    ):
        app.record_receipt(ctx(HOSPITAL, "rcpt", T0, hours=2), r.id, AppRecStatus.OK, [])


def test_a_referral_cannot_be_completed_before_it_is_accepted(app: ReferralsApplication) -> None:
    r = send(app)
    with pytest.raises(InvalidTransition, match="SENT"):
        app.complete(ctx(HOSPITAL, "done", T0, hours=1), r.id)


def test_only_gp_offices_send_referrals(app: ReferralsApplication) -> None:
    with pytest.raises(NotPermitted):
        app.send_referral(
            ctx(MUNICIPALITY, "m1", T0), PATIENT, HOSPITAL.her_id, "x", Priority.ROUTINE, None
        )
    assert events_in(app) == 0


def test_planned_date_before_the_assessment_is_refused(app: ReferralsApplication) -> None:
    r = send(app)
    app.record_receipt(ctx(HOSPITAL, "rcpt", T0, hours=1), r.id, AppRecStatus.OK, [])
    with pytest.raises(InvalidArgument, match="planned_date"):
        app.accept(ctx(HOSPITAL, "acc", T0, hours=48), r.id, date(2026, 8, 1))


def test_a_repeated_send_returns_the_first_referral_and_writes_nothing(
    app: ReferralsApplication,
) -> None:
    first = send(app, "send-x")
    before = events_in(app)
    again = send(app, "send-x", reason="a different body with the same command id")
    assert again.id == first.id and again.version == 1 and again.reason == first.reason
    assert events_in(app) == before


def test_a_repeated_transition_returns_its_first_result(app: ReferralsApplication) -> None:
    r = send(app)
    app.record_receipt(ctx(HOSPITAL, "rcpt", T0, hours=1), r.id, AppRecStatus.OK, [])
    accepted = app.accept(ctx(HOSPITAL, "acc", T0, hours=2), r.id, date(2026, 9, 10))
    app.complete(ctx(HOSPITAL, "done", T0, hours=3), r.id)
    before = events_in(app)
    again = app.accept(ctx(HOSPITAL, "acc", T0, hours=2), r.id, date(2026, 9, 10))
    assert again.state is ReferralState.ACCEPTED and again.version == accepted.version
    assert events_in(app) == before


def test_the_same_command_id_from_two_gp_offices_names_two_referrals(
    app: ReferralsApplication,
) -> None:
    a = send(app, "same")
    b = app.send_referral(
        ctx(OTHER_GP, "same", T0), PATIENT, HOSPITAL.her_id, "x", Priority.ROUTINE, None
    )
    assert a.id != b.id


def test_unknown_referral_is_not_found(app: ReferralsApplication) -> None:
    import uuid

    with pytest.raises(NotFound):
        app.complete(ctx(HOSPITAL, "x", T0), uuid.uuid4())


def test_a_referrals_parties_are_its_sender_and_its_receiver_now(
    app: ReferralsApplication,
) -> None:
    """What the referral itself tells the access policy; after a forward, the new receiver."""
    r = send(app)
    resolve = resolvers(app)["referral"]
    found = resolve(r.id)
    assert found is not None and found.patient == r.patient
    assert [(p.her_id, p.basis) for p in found.parties] == [
        (GP.her_id, Basis.REFERRAL_SENDER),
        (HOSPITAL.her_id, Basis.REFERRAL_RECEIVER),
    ]
    app.record_receipt(ctx(HOSPITAL, "rcpt", T0, hours=1), r.id, AppRecStatus.OK, [])
    app.forward(ctx(HOSPITAL, "fwd", T0, hours=2), r.id, OTHER_HOSPITAL.her_id, "shorter wait")
    forwarded = resolve(r.id)
    assert forwarded is not None
    assert forwarded.parties[1].her_id == OTHER_HOSPITAL.her_id
    assert resolve(uuid.uuid4()) is None  # unknown: refused like any other


def received(app: ReferralsApplication):  # type: ignore[no-untyped-def]
    r = send(app)
    return app.record_receipt(ctx(HOSPITAL, "rcpt", T0, hours=1), r.id, AppRecStatus.OK, [])


def test_a_colorectal_pathway_reaches_its_milestones_in_order(app: ReferralsApplication) -> None:
    r = received(app)
    r = app.record_cancer_milestone(ctx(HOSPITAL, "m1", T0, hours=48), r.id, FIRST, None)
    r = app.accept(ctx(HOSPITAL, "acc", T0, hours=50), r.id, date(2026, 9, 4))
    r = app.record_cancer_milestone(
        ctx(HOSPITAL, "m2", T0, hours=200), r.id, DONE, Treatment.SURGERY
    )
    r = app.complete(
        ctx(HOSPITAL, "done", T0, hours=210), r.id
    )  # the pathway outlives the referral
    r = app.record_cancer_milestone(ctx(HOSPITAL, "m3", T0, hours=300), r.id, START, None)
    assert list(r.cancer_milestones) == ["FIRST_APPOINTMENT", "INVESTIGATION_COMPLETED", START]
    assert r.cancer_treatment is Treatment.SURGERY
    assert r.cancer_started_at == (T0 + timedelta(hours=1)).isoformat()


def test_milestones_come_in_order_and_once(app: ReferralsApplication) -> None:
    r = received(app)
    with pytest.raises(InvalidTransition, match="record INVESTIGATION_COMPLETED"):
        app.record_cancer_milestone(ctx(HOSPITAL, "m2", T0, hours=5), r.id, DONE, Treatment.SURGERY)
    app.record_cancer_milestone(ctx(HOSPITAL, "m1", T0, hours=5), r.id, FIRST, None)
    with pytest.raises(InvalidTransition, match="FIRST_APPOINTMENT"):
        app.record_cancer_milestone(ctx(HOSPITAL, "m1-again", T0, hours=6), r.id, FIRST, None)
    with pytest.raises(InvalidArgument, match="occurred_at"):
        app.record_cancer_milestone(ctx(HOSPITAL, "m2", T0, hours=4), r.id, DONE, Treatment.SURGERY)


def test_the_investigation_ends_with_a_treatment_the_pathway_has_a_standard_for(
    app: ReferralsApplication,
) -> None:
    r = received(app)
    app.record_cancer_milestone(ctx(HOSPITAL, "m1", T0, hours=5), r.id, FIRST, None)
    before = events_in(app)
    with pytest.raises(InvalidArgument, match=r"^treatment: is required"):
        app.record_cancer_milestone(ctx(HOSPITAL, "m2", T0, hours=9), r.id, DONE, None)
    lymphoma = send(app, "send-2", cancer_pathway=CancerPathway.LYMPHOMA)
    app.record_receipt(ctx(HOSPITAL, "rcpt-2", T0, hours=1), lymphoma.id, AppRecStatus.OK, [])
    app.record_cancer_milestone(ctx(HOSPITAL, "l1", T0, hours=5), lymphoma.id, FIRST, None)
    before = events_in(app)
    with pytest.raises(InvalidArgument, match="no standard time"):
        app.record_cancer_milestone(
            ctx(HOSPITAL, "l2", T0, hours=9), lymphoma.id, DONE, Treatment.SURGERY
        )
    assert events_in(app) == before


def test_only_the_receiving_hospital_records_milestones_of_a_cancer_referral(
    app: ReferralsApplication,
) -> None:
    r = received(app)
    with pytest.raises(NotPermitted):
        app.record_cancer_milestone(ctx(OTHER_HOSPITAL, "m1", T0, hours=5), r.id, FIRST, None)
    plain = send(app, "send-3", cancer_pathway=None, priority=Priority.ROUTINE)
    app.record_receipt(ctx(HOSPITAL, "rcpt-3", T0, hours=1), plain.id, AppRecStatus.OK, [])
    with pytest.raises(InvalidTransition, match="without a cancer pathway"):
        app.record_cancer_milestone(ctx(HOSPITAL, "p1", T0, hours=5), plain.id, FIRST, None)
    sent = send(app, "send-4")
    with pytest.raises(InvalidTransition, match="is SENT"):
        app.record_cancer_milestone(ctx(HOSPITAL, "s1", T0, hours=5), sent.id, FIRST, None)


REJECTED_FORMAT = [{"code": "E10", "description": "Ugyldig meldingsformat"}]


def test_a_rejected_referral_is_corrected_and_resent_as_the_same_referral(
    app: ReferralsApplication,
) -> None:
    r = send(app)
    app.record_receipt(
        ctx(HOSPITAL, "rcpt", T0, hours=1), r.id, AppRecStatus.REJECTED, REJECTED_FORMAT
    )
    r = app.resend(ctx(GP, "resend", T0, hours=3), r.id, "Blod i avføringen, Hb 9,1", None)
    assert (r.state, r.receiver_her_id, r.resent) == (ReferralState.SENT, HOSPITAL.her_id, 1)
    assert r.reason == "Blod i avføringen, Hb 9,1"
    # The corrected message waits for its own receipt, and the pathway starts on that one.
    r = app.record_receipt(ctx(HOSPITAL, "rcpt-2", T0, hours=4), r.id, AppRecStatus.OK, [])
    assert r.state is ReferralState.RECEIVED
    assert r.cancer_started_at == (T0 + timedelta(hours=4)).isoformat()


def test_a_rejected_referral_may_be_resent_to_another_hospital(
    app: ReferralsApplication,
) -> None:
    r = send(app)
    app.record_receipt(
        ctx(HOSPITAL, "rcpt", T0, hours=1), r.id, AppRecStatus.REJECTED, REJECTED_FORMAT
    )
    r = app.resend(ctx(GP, "resend", T0, hours=2), r.id, "Blod i avføringen", OTHER_HOSPITAL.her_id)
    assert r.receiver_her_id == OTHER_HOSPITAL.her_id
    with pytest.raises(NotPermitted):  # the first hospital is no longer the receiver
        app.record_receipt(ctx(HOSPITAL, "rcpt-2", T0, hours=3), r.id, AppRecStatus.OK, [])
    r = app.record_receipt(ctx(OTHER_HOSPITAL, "rcpt-3", T0, hours=3), r.id, AppRecStatus.OK, [])
    assert r.state is ReferralState.RECEIVED


def test_only_the_referring_gp_resends_and_only_a_rejected_referral(
    app: ReferralsApplication,
) -> None:
    r = send(app)
    with pytest.raises(InvalidTransition, match="is SENT"):
        app.resend(ctx(GP, "resend-early", T0, hours=1), r.id, "Rettet", None)
    app.record_receipt(
        ctx(HOSPITAL, "rcpt", T0, hours=1), r.id, AppRecStatus.REJECTED, REJECTED_FORMAT
    )
    before = events_in(app)
    with pytest.raises(NotPermitted):
        app.resend(ctx(OTHER_GP, "resend-other", T0, hours=2), r.id, "Rettet", None)
    with pytest.raises(InvalidArgument, match="receiver_her_id"):
        app.resend(ctx(GP, "resend-self", T0, hours=2), r.id, "Rettet", GP.her_id)
    assert events_in(app) == before


def test_a_cancer_pathway_ends_without_treatment_with_a_coded_reason(
    app: ReferralsApplication,
) -> None:
    r = received(app)
    app.record_cancer_milestone(ctx(HOSPITAL, "m1", T0, hours=48), r.id, FIRST, None)
    r = app.end_cancer_pathway(
        ctx(HOSPITAL, "end", T0, hours=100), r.id, CancerPathwayEndReason.CANCER_NOT_CONFIRMED, None
    )
    assert r.cancer_end_reason is CancerPathwayEndReason.CANCER_NOT_CONFIRMED
    assert r.cancer_ended_at == (T0 + timedelta(hours=100)).isoformat()
    assert r.state is ReferralState.RECEIVED  # the referral itself goes on
    with pytest.raises(InvalidTransition, match="ended"):
        app.record_cancer_milestone(
            ctx(HOSPITAL, "m2", T0, hours=120), r.id, DONE, Treatment.SURGERY
        )
    with pytest.raises(InvalidTransition, match="ended"):
        app.end_cancer_pathway(
            ctx(HOSPITAL, "end-2", T0, hours=130), r.id, CancerPathwayEndReason.OTHER, "x"
        )


def test_a_pathway_cannot_end_without_treatment_once_treatment_started(
    app: ReferralsApplication,
) -> None:
    r = received(app)
    app.record_cancer_milestone(ctx(HOSPITAL, "m1", T0, hours=48), r.id, FIRST, None)
    app.record_cancer_milestone(ctx(HOSPITAL, "m2", T0, hours=96), r.id, DONE, Treatment.DRUGS)
    app.record_cancer_milestone(ctx(HOSPITAL, "m3", T0, hours=150), r.id, START, None)
    with pytest.raises(InvalidTransition, match="treatment started"):
        app.end_cancer_pathway(
            ctx(HOSPITAL, "end", T0, hours=160), r.id, CancerPathwayEndReason.PATIENT_DECLINED, None
        )


def test_ending_a_pathway_needs_the_receiving_hospital_a_note_for_other_and_a_cancer_pathway(
    app: ReferralsApplication,
) -> None:
    r = received(app)
    before = events_in(app)
    with pytest.raises(NotPermitted):
        app.end_cancer_pathway(
            ctx(OTHER_HOSPITAL, "e1", T0, hours=5), r.id, CancerPathwayEndReason.PATIENT_DIED, None
        )
    with pytest.raises(InvalidArgument, match=r"^note"):
        app.end_cancer_pathway(
            ctx(HOSPITAL, "e2", T0, hours=5), r.id, CancerPathwayEndReason.OTHER, None
        )
    with pytest.raises(InvalidArgument, match="occurred_at"):
        app.end_cancer_pathway(
            ctx(HOSPITAL, "e3", T0, hours=-1), r.id, CancerPathwayEndReason.PATIENT_DIED, None
        )
    plain = send(app, "send-plain", cancer_pathway=None, priority=Priority.ROUTINE)
    app.record_receipt(ctx(HOSPITAL, "rcpt-p", T0, hours=1), plain.id, AppRecStatus.OK, [])
    before = events_in(app)
    with pytest.raises(InvalidTransition, match="without a cancer pathway"):
        app.end_cancer_pathway(
            ctx(HOSPITAL, "e4", T0, hours=5), plain.id, CancerPathwayEndReason.PATIENT_DIED, None
        )
    assert events_in(app) == before
