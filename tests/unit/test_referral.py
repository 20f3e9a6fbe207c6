"""The referral lifecycle as the GP and the hospitals live it (in-memory store)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from services.referrals.application import ReferralsApplication
from services.referrals.domain import CancerPathway, Priority, ReferralState
from shared.apprec import AppRecStatus
from shared.auth import Actor
from shared.domain import CommandContext
from shared.errors import InvalidArgument, InvalidTransition, NotFound, NotPermitted
from shared.ids import FNR_SYSTEM
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_GP, OTHER_HOSPITAL
from tests.support import make_fnr

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(12, 3, 42, 480)}
T0 = datetime(2026, 9, 1, 8, 30, tzinfo=UTC)


def ctx(actor: Actor, command_id: str, hours: float = 0) -> CommandContext:
    return CommandContext(
        command_id=command_id,
        occurred_at=T0 + timedelta(hours=hours),
        actor=actor,
        correlation_id="story",
    )


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
    return app.send_referral(ctx(GP, command_id), **args)  # type: ignore[arg-type]


def events_in(app: ReferralsApplication) -> int:
    return app.recorder.max_notification_id() or 0


def test_a_referral_is_received_accepted_and_completed(app: ReferralsApplication) -> None:
    r = send(app)
    assert r.state is ReferralState.SENT
    r = app.record_receipt(ctx(HOSPITAL, "rcpt", 1), r.id, AppRecStatus.OK, [])
    assert r.state is ReferralState.RECEIVED
    r = app.accept(ctx(HOSPITAL, "acc", 24), r.id, date(2026, 9, 10))
    assert (r.state, r.planned_date) == (ReferralState.ACCEPTED, date(2026, 9, 10))
    r = app.complete(ctx(HOSPITAL, "done", 300), r.id)
    assert r.state is ReferralState.COMPLETED
    assert r.version == 4


def test_a_receipt_with_errors_in_part_still_counts_as_received(
    app: ReferralsApplication,
) -> None:
    r = send(app)
    errors = [{"code": "E35", "description": "Vedlegg mangler"}]
    r = app.record_receipt(ctx(HOSPITAL, "rcpt", 1), r.id, AppRecStatus.OK_ERROR_IN_PART, errors)
    assert r.state is ReferralState.RECEIVED
    assert r.last_receipt == {"status": "OK_ERROR_IN_PART", "errors": errors}


def test_a_rejected_receipt_closes_the_referral(app: ReferralsApplication) -> None:
    r = send(app)
    errors = [{"code": "E10", "description": "Ugyldig meldingsformat"}]
    r = app.record_receipt(ctx(HOSPITAL, "rcpt", 1), r.id, AppRecStatus.REJECTED, errors)
    assert r.state is ReferralState.RECEIPT_REJECTED
    with pytest.raises(InvalidTransition, match="RECEIPT_REJECTED"):
        app.accept(ctx(HOSPITAL, "acc", 2), r.id, date(2026, 9, 10))


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
        app.record_receipt(ctx(HOSPITAL, "rcpt", 1), r.id, status, errors)
    assert events_in(app) == before


def test_a_forwarded_referral_waits_for_the_new_hospitals_receipt(
    app: ReferralsApplication,
) -> None:
    r = send(app)
    app.record_receipt(ctx(HOSPITAL, "rcpt", 1), r.id, AppRecStatus.OK, [])
    r = app.forward(ctx(HOSPITAL, "fwd", 2), r.id, OTHER_HOSPITAL.her_id, "Kortere ventetid")
    assert (r.state, r.receiver_her_id) == (ReferralState.FORWARDED, OTHER_HOSPITAL.her_id)
    with pytest.raises(NotPermitted, match="receiving hospital"):
        app.accept(ctx(HOSPITAL, "late", 3), r.id, date(2026, 9, 20))
    r = app.record_receipt(ctx(OTHER_HOSPITAL, "rcpt-b", 3), r.id, AppRecStatus.OK, [])
    r = app.accept(ctx(OTHER_HOSPITAL, "acc-b", 4), r.id, date(2026, 9, 20))
    assert r.state is ReferralState.ACCEPTED


def test_forwarding_to_the_same_hospital_is_refused(app: ReferralsApplication) -> None:
    r = send(app)
    app.record_receipt(ctx(HOSPITAL, "rcpt", 1), r.id, AppRecStatus.OK, [])
    with pytest.raises(InvalidArgument, match="new_receiver_her_id"):
        app.forward(ctx(HOSPITAL, "fwd", 2), r.id, HOSPITAL.her_id, "x")


def test_only_the_referring_gp_may_cancel(app: ReferralsApplication) -> None:
    r = send(app)
    with pytest.raises(NotPermitted):
        app.cancel(ctx(OTHER_GP, "c1", 1), r.id, "feil pasient")
    with pytest.raises(NotPermitted):
        app.cancel(ctx(HOSPITAL, "c2", 1), r.id, "feil pasient")
    r = app.cancel(ctx(GP, "c3", 1), r.id, "Bedring")
    assert r.state is ReferralState.CANCELLED


def test_a_cancelled_referral_cannot_be_received(app: ReferralsApplication) -> None:
    r = send(app)
    app.cancel(ctx(GP, "c", 1), r.id, "Bedring")
    with pytest.raises(
        InvalidTransition, match="cannot record a receipt: the referral is CANCELLED"
    ):
        app.record_receipt(ctx(HOSPITAL, "rcpt", 2), r.id, AppRecStatus.OK, [])


def test_a_referral_cannot_be_completed_before_it_is_accepted(app: ReferralsApplication) -> None:
    r = send(app)
    with pytest.raises(InvalidTransition, match="SENT"):
        app.complete(ctx(HOSPITAL, "done", 1), r.id)


def test_only_gp_offices_send_referrals(app: ReferralsApplication) -> None:
    with pytest.raises(NotPermitted):
        app.send_referral(
            ctx(MUNICIPALITY, "m1"), PATIENT, HOSPITAL.her_id, "x", Priority.ROUTINE, None
        )
    assert events_in(app) == 0


def test_planned_date_before_the_assessment_is_refused(app: ReferralsApplication) -> None:
    r = send(app)
    app.record_receipt(ctx(HOSPITAL, "rcpt", 1), r.id, AppRecStatus.OK, [])
    with pytest.raises(InvalidArgument, match="planned_date"):
        app.accept(ctx(HOSPITAL, "acc", 48), r.id, date(2026, 8, 1))


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
    app.record_receipt(ctx(HOSPITAL, "rcpt", 1), r.id, AppRecStatus.OK, [])
    accepted = app.accept(ctx(HOSPITAL, "acc", 2), r.id, date(2026, 9, 10))
    app.complete(ctx(HOSPITAL, "done", 3), r.id)
    before = events_in(app)
    again = app.accept(ctx(HOSPITAL, "acc", 2), r.id, date(2026, 9, 10))
    assert again.state is ReferralState.ACCEPTED and again.version == accepted.version
    assert events_in(app) == before


def test_the_same_command_id_from_two_gp_offices_names_two_referrals(
    app: ReferralsApplication,
) -> None:
    a = send(app, "same")
    b = app.send_referral(
        ctx(OTHER_GP, "same"), PATIENT, HOSPITAL.her_id, "x", Priority.ROUTINE, None
    )
    assert a.id != b.id


def test_unknown_referral_is_not_found(app: ReferralsApplication) -> None:
    import uuid

    with pytest.raises(NotFound):
        app.complete(ctx(HOSPITAL, "x"), uuid.uuid4())


def test_only_sender_and_receiver_may_read(app: ReferralsApplication) -> None:
    r = send(app)
    assert app.get_referral(GP, r.id).id == r.id
    assert app.get_referral(HOSPITAL, r.id).id == r.id
    with pytest.raises(NotPermitted):
        app.get_referral(OTHER_HOSPITAL, r.id)
