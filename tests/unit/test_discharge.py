"""The end of a hospital stay as the hospital, the municipality and the GP live it
(in-memory store; the known-stays view filled directly, as the admissions events would)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime

import pytest

from services.discharges.application import DischargesApplication
from services.discharges.contract import CONTRACT
from services.discharges.domain import Destination, DischargeState, MessageType
from services.discharges.known_stays import KnownStays
from shared.apprec import AppRecStatus
from shared.errors import InvalidArgument, InvalidTransition, NotPermitted, NotYetKnown
from shared.ids import FNR_SYSTEM
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_MUNICIPALITY
from tests.support import ctx, make_fnr

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(3, 11, 38, 410)}
NURSING_HOME = "812345"
STAY = uuid.uuid4()
FRIDAY = datetime(2026, 10, 9, 9, 0, tzinfo=UTC)
TUESDAY = date(2026, 10, 13)


@pytest.fixture
def app() -> DischargesApplication:
    app = DischargesApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.stays.admitted(str(STAY), PATIENT, HOSPITAL.her_id, MUNICIPALITY.her_id)
    return app


def test_ready_on_friday_received_on_tuesday_in_a_short_term_nursing_home(
    app: DischargesApplication,
) -> None:
    app.declare_ready(ctx(HOSPITAL, "ready", FRIDAY), STAY)
    app.answer_readiness(ctx(MUNICIPALITY, "no", FRIDAY, days=0.2), STAY, False, None)
    app.answer_readiness(ctx(MUNICIPALITY, "tue", FRIDAY, days=1), STAY, True, TUESDAY)
    d = app.discharge(
        ctx(HOSPITAL, "out", FRIDAY, days=4),
        STAY,
        Destination.SHORT_TERM_NURSING_HOME,
        NURSING_HOME,
    )
    assert d.state is DischargeState.DISCHARGED
    (period,) = d.readiness_periods
    assert period["ready_at"] == FRIDAY.isoformat()
    assert period["answer"]["receive_on"] == "2026-10-13"
    report = [m for m in d.messages.values() if m["type"] == MessageType.DISCHARGE_REPORT]
    assert [m["to_her_id"] for m in report] == [NURSING_HOME]
    types = [type(e).__name__ for e in app.repository.event_store.get(d.id)]
    assert types == [
        "DischargeOpened",
        "PatientDeclaredReadyForDischarge",
        "MunicipalityAnsweredReadiness",
        "MunicipalityAnsweredReadiness",
        "PatientDischarged",
    ]


def test_epicrisis_to_gp_and_municipality_each_answered_by_its_receiver(
    app: DischargesApplication,
) -> None:
    app.discharge(ctx(HOSPITAL, "out", FRIDAY), STAY, Destination.HOME, None)
    app.send_epicrisis(ctx(HOSPITAL, "epi-gp", FRIDAY), STAY, GP.her_id)
    d = app.send_epicrisis(ctx(HOSPITAL, "epi-m", FRIDAY), STAY, MUNICIPALITY.her_id)
    by_receiver = {m["to_her_id"]: m["message_id"] for m in d.messages.values()}
    with pytest.raises(NotPermitted):
        app.record_message_receipt(
            ctx(MUNICIPALITY, "r0", FRIDAY),
            STAY,
            uuid.UUID(by_receiver[GP.her_id]),
            AppRecStatus.OK,
            [],
        )
    app.record_message_receipt(
        ctx(GP, "r1", FRIDAY), STAY, uuid.UUID(by_receiver[GP.her_id]), AppRecStatus.OK, []
    )
    d = app.record_message_receipt(
        ctx(MUNICIPALITY, "r2", FRIDAY),
        STAY,
        uuid.UUID(by_receiver[MUNICIPALITY.her_id]),
        AppRecStatus.REJECTED,
        [{"code": "E1", "description": "feil mottaker"}],
    )
    assert {m["receipt"]["status"] for m in d.messages.values()} == {"OK", "REJECTED"}
    with pytest.raises(InvalidTransition, match="already answered"):
        app.record_message_receipt(
            ctx(GP, "r3", FRIDAY), STAY, uuid.UUID(by_receiver[GP.her_id]), AppRecStatus.OK, []
        )
    # The receipt rules are the stay's too (shared.apprec.MessageReceipts); the event is the
    # discharge's own, as stored discharges name it.
    topics = [e.topic for e in app.recorder.select_events(d.id)]
    assert topics[-1] == "services.discharges.domain:Discharge.MessageReceiptRecorded"


def test_a_discharge_without_readiness_is_allowed(app: DischargesApplication) -> None:
    d = app.discharge(ctx(HOSPITAL, "out", FRIDAY), STAY, Destination.HOME_WITH_SERVICES, None)
    assert d.readiness_periods == []
    # The Utskrivningsrapport to the home nursing service, and Melding om utskrevet pasient to
    # the municipality that will care for the patient.
    by_type = {m["type"]: m for m in d.messages.values()}
    assert set(by_type) == {MessageType.DISCHARGE_REPORT, MessageType.DISCHARGE_NOTICE}
    assert {m["to_her_id"] for m in by_type.values()} == {MUNICIPALITY.her_id}


def test_readiness_for_a_stay_not_known_yet_is_refused_as_transient(
    app: DischargesApplication,
) -> None:
    """Discharges cannot tell a stay never admitted from one whose admission has not reached
    its view yet: NotYetKnown (UNAVAILABLE, retried), not an impossible transition."""
    with pytest.raises(NotYetKnown, match="not known to discharges yet"):
        app.declare_ready(ctx(HOSPITAL, "ready", FRIDAY), uuid.uuid4())
    assert not issubclass(NotYetKnown, InvalidTransition)


def test_readiness_for_a_closed_stay_is_refused_naming_the_state(
    app: DischargesApplication,
) -> None:
    app.stays.closed(str(STAY), PATIENT, 2, HOSPITAL.her_id)
    with pytest.raises(InvalidTransition, match="is CLOSED"):
        app.declare_ready(ctx(HOSPITAL, "ready", FRIDAY), STAY)


def test_a_withdrawal_ends_the_period_and_a_new_readiness_starts_another(
    app: DischargesApplication,
) -> None:
    app.declare_ready(ctx(HOSPITAL, "ready-1", FRIDAY), STAY)
    with pytest.raises(InvalidTransition, match="already READY"):
        app.declare_ready(ctx(HOSPITAL, "ready-again", FRIDAY), STAY)
    d = app.withdraw_readiness(ctx(HOSPITAL, "avmeld", FRIDAY, days=1), STAY, "ny pneumoni")
    assert d.state is DischargeState.NOT_READY
    d = app.declare_ready(ctx(HOSPITAL, "ready-2", FRIDAY, days=3), STAY)
    assert d.state is DischargeState.READY
    assert [p["withdrawn_at"] is not None for p in d.readiness_periods] == [True, False]
    assert len({p["message_id"] for p in d.readiness_periods}) == 2


def test_an_answer_by_another_municipality_is_refused(app: DischargesApplication) -> None:
    app.declare_ready(ctx(HOSPITAL, "ready", FRIDAY), STAY)
    with pytest.raises(NotPermitted):
        app.answer_readiness(ctx(OTHER_MUNICIPALITY, "a", FRIDAY), STAY, True, TUESDAY)


def test_receive_on_is_required_and_not_before_the_ready_day(app: DischargesApplication) -> None:
    app.declare_ready(ctx(HOSPITAL, "ready", FRIDAY), STAY)
    with pytest.raises(InvalidArgument, match=r"^receive_on: is required"):
        app.answer_readiness(ctx(MUNICIPALITY, "a1", FRIDAY), STAY, True, None)
    with pytest.raises(InvalidArgument, match=r"^receive_on: must not be before"):
        app.answer_readiness(ctx(MUNICIPALITY, "a2", FRIDAY), STAY, True, date(2026, 10, 8))


def test_only_the_responsible_hospital_declares_readiness(app: DischargesApplication) -> None:
    app.stays.transferred(str(STAY), PATIENT, 2, "90234")
    with pytest.raises(NotPermitted):
        app.declare_ready(ctx(HOSPITAL, "ready", FRIDAY), STAY)


def test_the_patient_is_discharged_once(app: DischargesApplication) -> None:
    app.discharge(ctx(HOSPITAL, "out", FRIDAY), STAY, Destination.HOME, None)
    with pytest.raises(InvalidTransition, match="already DISCHARGED"):
        app.discharge(ctx(HOSPITAL, "out-2", FRIDAY), STAY, Destination.HOME, None)


def test_a_repeated_command_returns_the_first_result_and_records_nothing(
    app: DischargesApplication,
) -> None:
    first = app.declare_ready(ctx(HOSPITAL, "ready", FRIDAY), STAY)
    app.answer_readiness(ctx(MUNICIPALITY, "no", FRIDAY), STAY, False, None)
    again = app.declare_ready(ctx(HOSPITAL, "ready", FRIDAY), STAY)
    assert again.version == first.version == 2
    assert again.readiness_periods == first.readiness_periods
    assert app.recorder.max_notification_id() == 3


def test_an_older_admissions_event_never_overwrites_a_newer_state() -> None:
    stays = KnownStays()
    stay = str(uuid.uuid4())
    stays.closed(stay, PATIENT, 3, HOSPITAL.her_id)
    stays.transferred(stay, PATIENT, 2, "90234")
    stays.admitted(stay, PATIENT, HOSPITAL.her_id, MUNICIPALITY.her_id)
    stays.admitted(stay, PATIENT, HOSPITAL.her_id, MUNICIPALITY.her_id)
    known = stays.get(uuid.UUID(stay))
    assert known is not None
    assert (known.state, known.hospital_her_id, known.municipality_her_id) == (
        "CLOSED",
        HOSPITAL.her_id,
        MUNICIPALITY.her_id,
    )


def test_the_avmelding_goes_to_the_notified_municipality_and_waits_for_its_receipt(
    app: DischargesApplication,
) -> None:
    app.declare_ready(ctx(HOSPITAL, "ready", FRIDAY), STAY)
    d = app.withdraw_readiness(ctx(HOSPITAL, "avmeld", FRIDAY, days=1), STAY, "ny pneumoni")
    (avmelding,) = [m for m in d.messages.values() if m["type"] == MessageType.WITHDRAWAL_NOTICE]
    assert (avmelding["to_her_id"], avmelding["receipt"]) == (MUNICIPALITY.her_id, None)
    with pytest.raises(NotPermitted):
        app.record_message_receipt(
            ctx(OTHER_MUNICIPALITY, "r0", FRIDAY, days=1.1),
            STAY,
            uuid.UUID(avmelding["message_id"]),
            AppRecStatus.OK,
            [],
        )
    d = app.record_message_receipt(
        ctx(MUNICIPALITY, "r1", FRIDAY, days=1.1),
        STAY,
        uuid.UUID(avmelding["message_id"]),
        AppRecStatus.OK,
        [],
    )
    assert d.messages[avmelding["message_id"]]["receipt"]["status"] == "OK"


def test_a_withdrawal_stored_before_the_avmelding_was_a_message_still_replays(
    app: DischargesApplication,
) -> None:
    """Stored ReadinessWithdrawn events have no message id: they replay as a withdrawal
    without a message, and the relay publishes them with none (version 2's null)."""
    app.declare_ready(ctx(HOSPITAL, "ready", FRIDAY), STAY)
    d = app.withdraw_readiness(ctx(HOSPITAL, "avmeld", FRIDAY, days=1), STAY, "ny pneumoni")
    transcoder = app.mapper.transcoder
    aggregate = None
    for stored in app.recorder.select_events(d.id):
        state = transcoder.decode(stored.state)
        if stored.topic.endswith(".ReadinessWithdrawn"):
            del state["message_id"]
        old = dataclasses.replace(stored, state=transcoder.encode(state))
        domain_event = app.mapper.to_domain_event(old)
        aggregate = domain_event.mutate(aggregate)  # type: ignore[arg-type]
        if stored.topic.endswith(".ReadinessWithdrawn"):
            assert CONTRACT["ReadinessWithdrawn"](domain_event).message_id is None  # type: ignore[attr-defined]
    assert aggregate is not None
    assert aggregate.state is DischargeState.NOT_READY
    assert [m["type"] for m in aggregate.messages.values()] == [MessageType.READINESS_NOTICE]
