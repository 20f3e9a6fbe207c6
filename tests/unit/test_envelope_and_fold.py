"""The public envelope and the deterministic pathway fold."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta

import pytest

from services.pathway.folding.pathway import fold
from services.referrals.application import ReferralsApplication
from services.referrals.domain import CancerMilestone, CancerPathway, Priority, Treatment
from shared.apprec import AppRecStatus
from shared.domain import CommandContext
from shared.events import ContractError, Envelope
from shared.events.referrals import ReferralAccepted, ReferralSent
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
    assert sent.payload(ReferralSent).receiver_her_id == HOSPITAL.her_id
    assert set(json.loads(sent.to_json())["data"]) == set(ReferralSent.model_fields)
    assert Envelope.from_json(sent.to_json()) == sent


def test_envelope_dates_in_data_are_iso_strings() -> None:
    accepted = next(e for e in story() if e.event_type == "ReferralAccepted")
    assert accepted.payload(ReferralAccepted).planned_date == "2026-03-09"
    json.loads(accepted.to_json())


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"schema_version": 1}', "event_id: Field required"),
    ],
)
def test_malformed_bodies_are_named_for_the_dead_letter_queue(body: bytes, reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
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


def lymphoma_story(through: list[tuple[str, int, str | None]]) -> list[Envelope]:
    """An urgent lymphoma referral received at 10:00 on Monday 2 March 2026, then the given
    milestones (name, hours after receipt, treatment)."""
    app = ReferralsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})

    def c(actor, cid, h):  # type: ignore[no-untyped-def]
        return CommandContext(cid, T0 + timedelta(hours=1 + h), actor, "corr")

    r = app.send_referral(
        c(GP, "s", -1),
        PATIENT,
        HOSPITAL.her_id,
        "Hovne lymfeknuter",
        Priority.URGENT,
        CancerPathway.LYMPHOMA,
    )
    app.record_receipt(c(HOSPITAL, "r", 0), r.id, AppRecStatus.OK, [])
    for name, hours, treatment in through:
        app.record_cancer_milestone(
            c(HOSPITAL, name, hours),
            r.id,
            CancerMilestone(name),
            Treatment(treatment) if treatment else None,
        )
    return list(iter_all_envelopes("referrals", app))


def test_a_lymphoma_pathway_waits_on_the_hospital_segment_by_segment() -> None:
    tasks = fold(lymphoma_story([])).tasks
    first = next(t for t in tasks if t.kind == "CANCER_FIRST_APPOINTMENT")
    assert first.due.startswith("2026-03-06T22:59:59")  # 4 days: end of Friday, Oslo time
    assert first.waiting_on_her_id == HOSPITAL.her_id
    # Seen on Wednesday; the investigation (14 days) runs from that day.
    tasks = fold(lymphoma_story([("FIRST_APPOINTMENT", 48, None)])).tasks
    assert [t.kind for t in tasks if t.kind.startswith("CANCER")] == [
        "CANCER_INVESTIGATION_COMPLETED"
    ]
    done = next(t for t in tasks if t.kind == "CANCER_INVESTIGATION_COMPLETED")
    assert done.due.startswith("2026-03-18T22:59:59")
    # Radiotherapy decided on 16 March: 17 days to start it.
    story_ = [("FIRST_APPOINTMENT", 48, None), ("INVESTIGATION_COMPLETED", 14 * 24, "RADIOTHERAPY")]
    envelopes = lymphoma_story(story_)
    pathway = fold(envelopes)
    start = next(t for t in pathway.tasks if t.kind == "CANCER_TREATMENT_START")
    assert start.due.startswith("2026-04-02T21:59:59")  # summer time from 29 March
    assert "strålebehandling" in start.description
    milestones = pathway.referrals[0].cancer_milestones()
    assert [m.standard_days for m in milestones] == [4, 14, 17]
    assert milestones[2].reached_at is None and milestones[2].segment_start
    assert "Pakkeforløp: utredning avsluttet (strålebehandling)" in [
        s for _e, s in pathway.timeline
    ]


def test_a_started_treatment_closes_the_cancer_pathway_tasks() -> None:
    pathway = fold(
        lymphoma_story(
            [
                ("FIRST_APPOINTMENT", 48, None),
                ("INVESTIGATION_COMPLETED", 100, "DRUGS"),
                ("TREATMENT_START", 150, None),
            ]
        )
    )
    assert not [t for t in pathway.tasks if t.kind.startswith("CANCER")]
    assert [m.treatment for m in pathway.referrals[0].cancer_milestones()] == [
        None,
        None,
        "DRUGS",
    ]
