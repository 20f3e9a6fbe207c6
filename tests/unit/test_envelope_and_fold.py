"""The public envelope and the deterministic pathway fold."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta

import pytest

from services.pathway.fold import fold
from services.referrals.application import ReferralsApplication
from services.referrals.domain import CancerPathway, Priority
from shared.apprec import AppRecStatus
from shared.domain import CommandContext
from shared.envelope import Envelope, EnvelopeError
from shared.ids import FNR_SYSTEM
from shared.outbox import iter_all_envelopes
from tests.conftest import GP, HOSPITAL, OTHER_HOSPITAL
from tests.support import make_fnr

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(5, 5, 71, 480)}
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def story() -> list[Envelope]:
    """Two referrals: one forwarded and accepted, one cancelled."""
    app = ReferralsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})

    def c(actor, cid, h):  # type: ignore[no-untyped-def]
        return CommandContext(cid, T0 + timedelta(hours=h), actor, "corr")

    r = app.send_referral(
        c(GP, "s1", 0), PATIENT, HOSPITAL.her_id, "Smerter", Priority.URGENT, CancerPathway.BREAST
    )
    app.record_receipt(c(HOSPITAL, "r1", 1), r.id, AppRecStatus.OK, [])
    app.forward(c(HOSPITAL, "f1", 2), r.id, OTHER_HOSPITAL.her_id, "Kapasitet")
    app.record_receipt(c(OTHER_HOSPITAL, "r2", 3), r.id, AppRecStatus.OK, [])
    app.accept(c(OTHER_HOSPITAL, "a1", 4), r.id, date(2026, 3, 9))
    other = app.send_referral(
        c(GP, "s2", 5), PATIENT, HOSPITAL.her_id, "Hoste", Priority.ROUTINE, None
    )
    app.cancel(c(GP, "x2", 6), other.id, "Bedring")
    return list(iter_all_envelopes("referrals", app))


def test_envelope_carries_the_public_contract() -> None:
    sent = story()[0]
    assert sent.event_type == "ReferralSent"
    assert sent.event_id == f"{sent.aggregate_id}:1"
    assert sent.patient == PATIENT
    assert sent.actor == {"her_id": GP.her_id, "org_kind": "GP", "hpr": GP.hpr}
    assert sent.occurred_at == T0.isoformat()
    assert sent.causation_id == "s1" and sent.correlation_id == "corr"
    assert sent.data["receiver_her_id"] == HOSPITAL.her_id
    assert "meta" not in sent.data and "originator_topic" not in sent.data
    assert Envelope.from_json(sent.to_json()) == sent


def test_envelope_dates_in_data_are_iso_strings() -> None:
    accepted = next(e for e in story() if e.event_type == "ReferralAccepted")
    assert accepted.data["planned_date"] == "2026-03-09"
    json.loads(accepted.to_json())


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"schema_version": 1}', "missing fields"),
        (b'{"schema_version": 99}', "unknown schema_version"),
    ],
)
def test_malformed_bodies_are_named_for_the_dead_letter_queue(body: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError, match=reason):
        Envelope.from_json(body)


def test_the_fold_tells_where_each_referral_stands() -> None:
    pathway = fold(story())
    states = {r.state for r in pathway.referrals}
    assert states == {"ACCEPTED", "CANCELLED"}
    accepted = next(r for r in pathway.referrals if r.state == "ACCEPTED")
    assert accepted.receiver_her_id == OTHER_HOSPITAL.her_id
    assert accepted.cancer_pathway == "BREAST"
    assert pathway.open_referrals == 1
    assert [e.event_type for e, _ in pathway.timeline][:2] == [
        "ReferralSent",
        "ReferralReceiptRecorded",
    ]


def test_duplicates_and_any_arrival_order_give_the_same_pathway() -> None:
    events = story()
    expected = fold(events)
    rng = random.Random(7)
    for _ in range(20):
        shuffled = events + rng.sample(events, 3)
        rng.shuffle(shuffled)
        unique = list({e.event_id: e for e in shuffled}.values())
        got = fold(unique)
        assert [e.event_id for e, _ in got.timeline] == [e.event_id for e, _ in expected.timeline]
        assert got.referrals == expected.referrals


def test_a_referral_seen_before_its_sent_event_is_not_guessed() -> None:
    events = [e for e in story() if e.event_type != "ReferralSent"]
    assert fold(events).referrals == []
