"""The public envelope and the deterministic pathway fold."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta

import pytest

from services.pathway.folding.pathway import fold
from services.referrals.application import ReferralsApplication
from services.referrals.domain import (
    CancerMilestone,
    CancerPathway,
    CancerPathwayEndReason,
    Priority,
    Treatment,
)
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


def colorectal_story(
    through: list[tuple[str, float, str | None]], end: str | None = None
) -> list[Envelope]:
    """An urgent colorectal referral sent at 10:00 on Monday 2 March 2026 and received an hour
    later, then the given milestones (name, days after receipt, treatment) and, if named, the
    pathway ended without treatment (days after receipt 30)."""
    app = ReferralsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})

    def c(actor, cid, days):  # type: ignore[no-untyped-def]
        return CommandContext(cid, T0 + timedelta(hours=1, days=days), actor, "corr")

    r = app.send_referral(
        c(GP, "s", -1 / 24),
        PATIENT,
        HOSPITAL.her_id,
        "Blod i avføringen",
        Priority.URGENT,
        CancerPathway.COLORECTAL,
    )
    app.record_receipt(c(HOSPITAL, "r", 0), r.id, AppRecStatus.OK, [])
    for name, days, treatment in through:
        app.record_cancer_milestone(
            c(HOSPITAL, name, days),
            r.id,
            CancerMilestone(name),
            Treatment(treatment) if treatment else None,
        )
    if end:
        app.end_cancer_pathway(c(HOSPITAL, "end", 30), r.id, CancerPathwayEndReason(end), None)
    return list(iter_all_envelopes("referrals", app))


def test_a_colorectal_pathway_within_its_total_though_one_segment_ran_late() -> None:
    """Seen on day 11 (the first segment's 9 days ran 2 days late), investigated in 8 days
    (of 12), surgery started 13 days later (of 14): 32 days from receipt, within the 35-day
    total, so the pathway is within standard — as Helsedirektoratet measures it."""
    pathway = fold(
        colorectal_story(
            [
                ("FIRST_APPOINTMENT", 11, None),
                ("INVESTIGATION_COMPLETED", 19, "SURGERY"),
                ("TREATMENT_START", 32, None),
            ]
        )
    )
    referral = pathway.referrals[0]
    first = referral.cancer_milestones()[0]
    assert first.reached_at and first.due and first.reached_at > first.due  # that segment: late
    total = referral.cancer_total()
    assert total is not None
    assert (total.elapsed_days, total.standard_total_days) == (32, 35)
    assert total.within_standard is True
    assert not [t for t in pathway.tasks if t.kind.startswith("CANCER")]


def test_a_colorectal_pathway_over_its_total_is_not_within_standard() -> None:
    total = (
        fold(
            colorectal_story(
                [
                    ("FIRST_APPOINTMENT", 9, None),
                    ("INVESTIGATION_COMPLETED", 21, "RADIOTHERAPY"),
                    ("TREATMENT_START", 40, None),
                ]
            )
        )
        .referrals[0]
        .cancer_total()
    )
    assert total is not None
    assert (total.elapsed_days, total.standard_total_days, total.within_standard) == (40, 39, False)


def test_a_running_pathway_is_not_measured_yet() -> None:
    total = (
        fold(
            colorectal_story(
                [("FIRST_APPOINTMENT", 5, None), ("INVESTIGATION_COMPLETED", 12, "DRUGS")]
            )
        )
        .referrals[0]
        .cancer_total()
    )
    assert total is not None
    assert total.within_standard is None and total.elapsed_days is None
    assert total.standard_total_days == 35
    assert total.total_due and total.total_due.startswith("2026-04-06T21:59:59")  # 2 March + 35


def test_a_pathway_ended_without_treatment_stops_its_deadlines_and_is_not_measured() -> None:
    pathway = fold(colorectal_story([("FIRST_APPOINTMENT", 5, None)], end="CANCER_NOT_CONFIRMED"))
    referral = pathway.referrals[0]
    assert not [t for t in pathway.tasks if t.kind.startswith("CANCER")]
    total = referral.cancer_total()
    assert total is not None
    assert (total.end_reason, total.within_standard) == ("CANCER_NOT_CONFIRMED", None)
    assert "Pakkeforløp avsluttet uten behandling: kreft ikke påvist" in [
        s for _e, s in pathway.timeline
    ]


def test_a_suspected_cancer_referral_is_assessed_within_the_shorter_deadline() -> None:
    """Received Monday 2 March 2026: 3 working days (to the end of Thursday 5 March, Oslo)
    instead of 10, because cancer is suspected."""
    (task,) = [t for t in fold(colorectal_story([])).tasks if t.kind == "REFERRAL_ASSESSMENT"]
    assert task.due.startswith("2026-03-05T22:59:59")
    assert "3 virkedager" in task.description


def test_a_routine_referral_keeps_ten_working_days() -> None:
    app = ReferralsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    r = app.send_referral(
        CommandContext("s", T0, GP, "c"), PATIENT, HOSPITAL.her_id, "Kne", Priority.ROUTINE, None
    )
    app.record_receipt(CommandContext("r", T0, HOSPITAL, "c"), r.id, AppRecStatus.OK, [])
    (task,) = fold(list(iter_all_envelopes("referrals", app))).tasks
    assert task.kind == "REFERRAL_ASSESSMENT"
    assert task.due.startswith("2026-03-16T22:59:59")  # 10 working days from Monday 2 March


def test_a_rejected_referral_waits_on_the_gp_until_it_is_corrected_and_resent() -> None:
    app = ReferralsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})

    def c(actor, cid, h):  # type: ignore[no-untyped-def]
        return CommandContext(cid, T0 + timedelta(hours=h), actor, "corr")

    r = app.send_referral(c(GP, "s", 0), PATIENT, HOSPITAL.her_id, "Kne", Priority.ROUTINE, None)
    errors = [{"code": "E10", "description": "Ugyldig meldingsformat"}]
    app.record_receipt(c(HOSPITAL, "r1", 1), r.id, AppRecStatus.REJECTED, errors)
    rejected = fold(list(iter_all_envelopes("referrals", app)))
    (task,) = rejected.tasks
    assert (task.kind, task.waiting_on_her_id, task.waiting_on_kind) == (
        "REFERRAL_RESEND",
        GP.her_id,
        "GP",
    )
    app.resend(c(GP, "again", 3), r.id, "Kne, rettet", OTHER_HOSPITAL.her_id)
    resent = fold(list(iter_all_envelopes("referrals", app)))
    referral = resent.referrals[0]
    assert (referral.state, referral.resent, referral.closed_at) == ("SENT", 1, None)
    assert [m.name for m in referral.messages] == [
        "Henvisning",
        "Henvisning (rettet og sendt på nytt)",
    ]
    (task,) = resent.tasks
    assert (task.kind, task.waiting_on_her_id) == ("REFERRAL_RECEIPT", OTHER_HOSPITAL.her_id)
    # The new receiver is a receiver of the referral from the resend on.
    assert referral.receivers[-1][:2] == (OTHER_HOSPITAL.her_id, referral.waiting_since)
