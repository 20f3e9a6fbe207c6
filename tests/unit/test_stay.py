"""A hospital stay and its PLO messages as the hospital and the municipality live them
(in-memory store)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.admissions.api import stay_parties
from services.admissions.application import AdmissionsApplication
from services.admissions.domain import (
    AdmissionType,
    CloseReason,
    MessageType,
    Stay,
    StayState,
)
from shared.access.model import Basis
from shared.apprec import AppRecStatus
from shared.errors import InvalidArgument, InvalidTransition, NotFound, NotPermitted
from shared.ids import FNR_SYSTEM
from shared.times import utc_iso
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_HOSPITAL, OTHER_MUNICIPALITY
from tests.support import ctx, events_in, make_fnr

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(3, 11, 38, 410)}
OTHER_PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(17, 6, 51, 220)}
T0 = datetime(2026, 10, 5, 22, 15, tzinfo=UTC)


@pytest.fixture
def app() -> AdmissionsApplication:
    return AdmissionsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def admit(
    app: AdmissionsApplication, command_id: str = "admit-1", hours: float = 0, **kw: Any
) -> Stay:
    args: dict[str, Any] = {
        "patient": PATIENT,
        "ward": "Medisinsk sengepost 3",
        "admission_type": AdmissionType.ACUTE,
        "referral_id": None,
        "municipality_her_id": MUNICIPALITY.her_id,
        "municipal_services_likely": True,
        "existing_service_user": True,
    }
    actor = kw.pop("actor", HOSPITAL)
    args.update(kw)
    return app.admit_patient(ctx(actor, command_id, T0, hours=hours), **args)


def message(stay: Stay, kind: MessageType, index: int = -1) -> dict[str, Any]:
    return [m for m in stay.messages.values() if m["type"] == kind.value][index]


def test_an_acute_admission_exchanges_notice_report_and_health_information_with_receipts(
    app: AdmissionsApplication,
) -> None:
    stay = admit(app)
    assert (stay.state, stay.hospital_her_id, stay.admission_type) == (
        StayState.OPEN,
        HOSPITAL.her_id,
        AdmissionType.ACUTE,
    )
    assert stay.health_information_due_at == T0 + timedelta(hours=24)

    stay = app.send_admission_notice(ctx(HOSPITAL, "notice", T0, hours=0.5), stay.id)
    stay = app.record_admission_report(ctx(MUNICIPALITY, "report", T0, hours=2), stay.id)
    stay = app.send_health_information(ctx(HOSPITAL, "helse", T0, hours=10), stay.id)
    notice = message(stay, MessageType.ADMISSION_NOTICE)
    report = message(stay, MessageType.ADMISSION_REPORT)
    health = message(stay, MessageType.HEALTH_INFORMATION)
    assert (notice["from_her_id"], notice["to_her_id"]) == (HOSPITAL.her_id, MUNICIPALITY.her_id)
    assert (report["from_her_id"], report["to_her_id"]) == (MUNICIPALITY.her_id, HOSPITAL.her_id)
    assert health["to_her_id"] == MUNICIPALITY.her_id
    assert stay.health_information_due_at is None
    assert all(m["receipt"] is None for m in stay.messages.values())

    stay = app.record_message_receipt(
        ctx(MUNICIPALITY, "r1", T0, hours=1),
        stay.id,
        uuid.UUID(notice["message_id"]),
        AppRecStatus.OK,
        [],
    )
    stay = app.record_message_receipt(
        ctx(HOSPITAL, "r2", T0, hours=3),
        stay.id,
        uuid.UUID(report["message_id"]),
        AppRecStatus.OK,
        [],
    )
    errors = [{"code": "E35", "description": "Vedlegg mangler"}]
    stay = app.record_message_receipt(
        ctx(MUNICIPALITY, "r3", T0, hours=11),
        stay.id,
        uuid.UUID(health["message_id"]),
        AppRecStatus.OK_ERROR_IN_PART,
        errors,
    )
    receipts = [m["receipt"] for m in stay.messages.values()]
    assert [r["status"] for r in receipts] == ["OK", "OK", "OK_ERROR_IN_PART"]
    assert receipts[2]["errors"] == errors
    assert stay.version == 7


def test_the_innleggelsesrapport_may_arrive_before_the_admission_notice(
    app: AdmissionsApplication,
) -> None:
    stay = admit(app)
    stay = app.record_admission_report(ctx(MUNICIPALITY, "report", T0, hours=0.2), stay.id)
    stay = app.send_admission_notice(ctx(HOSPITAL, "notice", T0, hours=1), stay.id)
    assert [m["type"] for m in stay.messages.values()] == ["ADMISSION_REPORT", "ADMISSION_NOTICE"]


def test_only_the_home_municipality_sends_the_innleggelsesrapport(
    app: AdmissionsApplication,
) -> None:
    stay = admit(app)
    for actor in (OTHER_MUNICIPALITY, HOSPITAL):
        with pytest.raises(NotPermitted):
            app.record_admission_report(ctx(actor, f"report-{actor.her_id}", T0, hours=1), stay.id)


def test_the_first_helseopplysninger_are_marked_first_and_may_be_sent_again(
    app: AdmissionsApplication,
) -> None:
    stay = admit(app)
    app.send_health_information(ctx(HOSPITAL, "h1", T0, hours=5), stay.id)
    app.send_health_information(ctx(HOSPITAL, "h2", T0, hours=30), stay.id)
    sent = [e for e in app.events.get(stay.id) if type(e).__name__ == "HealthInformationSent"]
    firsts = [vars(e)["first"] for e in sent]
    assert firsts == [True, False]


def test_a_receipt_from_an_organisation_other_than_the_receiver_is_refused(
    app: AdmissionsApplication,
) -> None:
    stay = admit(app)
    stay = app.send_admission_notice(ctx(HOSPITAL, "notice", T0, hours=1), stay.id)
    notice_id = uuid.UUID(message(stay, MessageType.ADMISSION_NOTICE)["message_id"])
    before = events_in(app)
    for actor in (HOSPITAL, OTHER_MUNICIPALITY, GP):
        with pytest.raises(NotPermitted, match="receiver"):
            app.record_message_receipt(
                ctx(actor, f"r-{actor.her_id}", T0, hours=2),
                stay.id,
                notice_id,
                AppRecStatus.OK,
                [],
            )
    assert events_in(app) == before


def test_a_second_receipt_for_the_same_message_is_refused_naming_it(
    app: AdmissionsApplication,
) -> None:
    stay = admit(app)
    stay = app.send_admission_notice(ctx(HOSPITAL, "notice", T0, hours=1), stay.id)
    notice_id = message(stay, MessageType.ADMISSION_NOTICE)["message_id"]
    app.record_message_receipt(
        ctx(MUNICIPALITY, "r1", T0, hours=2), stay.id, uuid.UUID(notice_id), AppRecStatus.OK, []
    )
    with pytest.raises(InvalidTransition, match=re.escape(notice_id)):
        app.record_message_receipt(
            ctx(MUNICIPALITY, "r2", T0, hours=3),
            stay.id,
            uuid.UUID(notice_id),
            AppRecStatus.REJECTED,
            [{"code": "E10", "description": "Ugyldig"}],
        )


@pytest.mark.parametrize(
    ("status", "errors", "field"),
    [
        (AppRecStatus.OK, [{"code": "E1", "description": "x"}], "receipt.errors"),
        (AppRecStatus.REJECTED, [], "receipt.errors"),
        (AppRecStatus.OK_ERROR_IN_PART, [{"code": "", "description": "x"}], "receipt.errors[0]"),
    ],
)
def test_an_apprec_must_carry_errors_exactly_when_not_ok(
    app: AdmissionsApplication, status: AppRecStatus, errors: list[dict[str, str]], field: str
) -> None:
    stay = admit(app)
    stay = app.send_admission_notice(ctx(HOSPITAL, "notice", T0, hours=1), stay.id)
    notice_id = uuid.UUID(message(stay, MessageType.ADMISSION_NOTICE)["message_id"])
    before = events_in(app)
    with pytest.raises(InvalidArgument, match=re.escape(field)):
        app.record_message_receipt(
            ctx(MUNICIPALITY, "r", T0, hours=2), stay.id, notice_id, status, errors
        )
    assert events_in(app) == before


def test_a_receipt_for_an_unknown_message_is_not_found(app: AdmissionsApplication) -> None:
    stay = admit(app)
    with pytest.raises(NotFound, match="message"):
        app.record_message_receipt(
            ctx(MUNICIPALITY, "r", T0, hours=1), stay.id, uuid.uuid4(), AppRecStatus.OK, []
        )


def test_a_transfer_to_another_hospital_hands_the_stay_over(app: AdmissionsApplication) -> None:
    stay = admit(app)
    stay = app.send_admission_notice(ctx(HOSPITAL, "notice", T0, hours=1), stay.id)
    stay = app.transfer_patient(
        ctx(HOSPITAL, "move", T0, hours=20), stay.id, OTHER_HOSPITAL.her_id, "Slag"
    )
    assert (stay.hospital_her_id, stay.ward, stay.admitting_hospital_her_id) == (
        OTHER_HOSPITAL.her_id,
        "Slag",
        HOSPITAL.her_id,
    )
    with pytest.raises(NotPermitted, match="responsible"):
        app.send_health_information(ctx(HOSPITAL, "late", T0, hours=21), stay.id)
    stay = app.send_admission_notice(ctx(OTHER_HOSPITAL, "notice-b", T0, hours=21), stay.id)
    stay = app.send_health_information(ctx(OTHER_HOSPITAL, "h-b", T0, hours=22), stay.id)
    report = app.record_admission_report(ctx(MUNICIPALITY, "report", T0, hours=23), stay.id)
    assert message(report, MessageType.ADMISSION_REPORT)["to_her_id"] == OTHER_HOSPITAL.her_id
    # both hospitals of the stay are its parties (the access policy lets both read it)
    hospitals = [p.her_id for p in stay_parties(stay) if p.basis is Basis.STAY_HOSPITAL]
    assert hospitals == [HOSPITAL.her_id, OTHER_HOSPITAL.her_id]


def test_a_move_between_wards_keeps_the_hospital_responsible(app: AdmissionsApplication) -> None:
    stay = admit(app)
    stay = app.transfer_patient(
        ctx(HOSPITAL, "move", T0, hours=4), stay.id, HOSPITAL.her_id, "Intensiv"
    )
    assert (stay.hospital_her_id, stay.ward) == (HOSPITAL.her_id, "Intensiv")
    assert stay.transfers[0]["from_ward"] == "Medisinsk sengepost 3"
    with pytest.raises(InvalidArgument, match="to_ward"):
        app.transfer_patient(
            ctx(HOSPITAL, "again", T0, hours=5), stay.id, HOSPITAL.her_id, "Intensiv"
        )


def test_the_admission_notice_is_sent_once_per_responsible_hospital(
    app: AdmissionsApplication,
) -> None:
    stay = admit(app)
    app.send_admission_notice(ctx(HOSPITAL, "notice", T0, hours=1), stay.id)
    with pytest.raises(InvalidTransition, match="admission notice"):
        app.send_admission_notice(ctx(HOSPITAL, "notice-again", T0, hours=2), stay.id)


def test_a_closed_stay_refuses_new_messages_but_takes_late_receipts(
    app: AdmissionsApplication,
) -> None:
    stay = admit(app)
    stay = app.send_health_information(ctx(HOSPITAL, "h1", T0, hours=5), stay.id)
    stay = app.close_stay(ctx(HOSPITAL, "discharge", T0, hours=72), stay.id, CloseReason.DISCHARGED)
    assert (stay.state, stay.close_reason) == (StayState.CLOSED, CloseReason.DISCHARGED)
    before = events_in(app)
    refused = [
        lambda: app.send_admission_notice(ctx(HOSPITAL, "n", T0, hours=73), stay.id),
        lambda: app.send_health_information(ctx(HOSPITAL, "h2", T0, hours=73), stay.id),
        lambda: app.record_admission_report(ctx(MUNICIPALITY, "rep", T0, hours=73), stay.id),
        lambda: app.transfer_patient(
            ctx(HOSPITAL, "t", T0, hours=73), stay.id, OTHER_HOSPITAL.her_id, "A"
        ),
        lambda: app.close_stay(ctx(HOSPITAL, "c2", T0, hours=73), stay.id, CloseReason.DISCHARGED),
    ]
    for command in refused:
        with pytest.raises(InvalidTransition, match="the stay is CLOSED"):
            command()
    assert events_in(app) == before
    health_id = uuid.UUID(message(stay, MessageType.HEALTH_INFORMATION)["message_id"])
    stay = app.record_message_receipt(
        ctx(MUNICIPALITY, "late-receipt", T0, hours=80), stay.id, health_id, AppRecStatus.OK, []
    )
    assert message(stay, MessageType.HEALTH_INFORMATION)["receipt"]["status"] == "OK"


def test_only_the_responsible_hospital_discharges(app: AdmissionsApplication) -> None:
    stay = admit(app)
    for actor in (OTHER_HOSPITAL, MUNICIPALITY):
        with pytest.raises(NotPermitted):
            app.close_stay(
                ctx(actor, f"c-{actor.her_id}", T0, hours=5), stay.id, CloseReason.DISCHARGED
            )


def test_only_hospitals_admit(app: AdmissionsApplication) -> None:
    for actor in (GP, MUNICIPALITY):
        with pytest.raises(NotPermitted):
            admit(app, f"admit-{actor.her_id}", actor=actor)
    assert events_in(app) == 0


def test_a_repeated_admission_returns_the_first_stay_and_writes_nothing(
    app: AdmissionsApplication,
) -> None:
    first = admit(app, "same")
    before = events_in(app)
    again = admit(app, "same", ward="another ward, same command id")
    assert (again.id, again.version, again.ward) == (first.id, 1, first.ward)
    assert events_in(app) == before
    assert [s.id for s in app.list_stays(PATIENT)] == [first.id]


def test_a_repeated_message_returns_its_first_result(app: AdmissionsApplication) -> None:
    stay = admit(app)
    sent = app.send_health_information(ctx(HOSPITAL, "h1", T0, hours=5), stay.id)
    app.send_health_information(ctx(HOSPITAL, "h2", T0, hours=6), stay.id)
    before = events_in(app)
    again = app.send_health_information(ctx(HOSPITAL, "h1", T0, hours=5), stay.id)
    assert again.version == sent.version and list(again.messages) == list(sent.messages)
    assert events_in(app) == before


def test_list_stays_gives_every_stay_of_the_patient_newest_first(
    app: AdmissionsApplication,
) -> None:
    spring = admit(app, "spring", hours=-24 * 180, admission_type=AdmissionType.ELECTIVE)
    autumn = admit(app, "autumn")
    elsewhere = admit(
        app,
        "elsewhere",
        hours=-24 * 30,
        actor=OTHER_HOSPITAL,
        municipality_her_id=OTHER_MUNICIPALITY.her_id,
    )
    admit(app, "other-patient", patient=OTHER_PATIENT)
    assert [s.id for s in app.list_stays(PATIENT)] == [autumn.id, elsewhere.id, spring.id]
    assert app.list_stays({"system": FNR_SYSTEM, "value": make_fnr(1, 1, 70, 100)}) == []


def test_an_elective_admission_remembers_the_referral_it_fulfils(
    app: AdmissionsApplication,
) -> None:
    referral_id = uuid.uuid4()
    stay = admit(app, admission_type=AdmissionType.ELECTIVE, referral_id=referral_id)
    assert stay.referral_id == str(referral_id)
    assert app.get_stay(stay.id).referral_id == str(referral_id)


def test_a_stays_parties_are_its_hospitals_and_the_receivers_of_its_messages(
    app: AdmissionsApplication,
) -> None:
    """What the stay itself tells the access policy: the admission's named municipality is
    no party; a municipality becomes one when a message is sent to it (while the stay is
    open), and owes a receipt until it answers."""
    stay = admit(app)
    assert [(p.her_id, p.basis) for p in stay_parties(stay)] == [
        (HOSPITAL.her_id, Basis.STAY_HOSPITAL)
    ]
    stay = app.send_admission_notice(ctx(HOSPITAL, "notice", T0, hours=1), stay.id)
    parties = {(p.her_id, p.basis) for p in stay_parties(stay)}
    assert (MUNICIPALITY.her_id, Basis.MESSAGE_RECEIVER) in parties
    assert (MUNICIPALITY.her_id, Basis.RECEIPT_DUE) in parties
    stay = app.close_stay(ctx(HOSPITAL, "out", T0, hours=30), stay.id, CloseReason.DISCHARGED)
    receiver = next(p for p in stay_parties(stay) if p.basis is Basis.MESSAGE_RECEIVER)
    assert receiver.valid_to == utc_iso(stay.closed_at or "")  # only while the stay was open
    with pytest.raises(NotFound):
        app.get_stay(uuid.uuid4())


def test_the_home_municipality_must_differ_from_the_hospital(app: AdmissionsApplication) -> None:
    with pytest.raises(InvalidArgument, match="municipality_her_id"):
        admit(app, municipality_her_id=HOSPITAL.her_id)


def test_command_ids_are_the_calling_organisations_own(app: AdmissionsApplication) -> None:
    """The municipality happens to pick the id the hospital used for the notice: it is another
    organisation's command, so it is recorded, not answered with the notice's result."""
    stay = admit(app)
    stay = app.send_admission_notice(ctx(HOSPITAL, "msg-1", T0, hours=1), stay.id)
    before = events_in(app)
    stay = app.record_admission_report(ctx(MUNICIPALITY, "msg-1", T0, hours=2), stay.id)
    assert events_in(app) == before + 1
    assert message(stay, MessageType.ADMISSION_REPORT)["to_her_id"] == HOSPITAL.her_id
    again = app.record_admission_report(ctx(MUNICIPALITY, "msg-1", T0, hours=2), stay.id)
    assert events_in(app) == before + 1 and again.version == stay.version


def test_a_receipt_is_stored_as_the_stays_own_event_as_stays_already_stored_hold_it(
    app: AdmissionsApplication,
) -> None:
    """The receipt rules are shared with the discharge (shared.apprec.MessageReceipts), but
    the event stays the stay's: stored stays name it `Stay.MessageReceiptRecorded`."""
    stay = app.send_admission_notice(ctx(HOSPITAL, "notice", T0, hours=0.5), admit(app).id)
    notice = message(stay, MessageType.ADMISSION_NOTICE)
    app.record_message_receipt(
        ctx(MUNICIPALITY, "r1", T0, hours=1),
        stay.id,
        uuid.UUID(notice["message_id"]),
        AppRecStatus.OK,
        [],
    )
    topics = [e.topic for e in app.recorder.select_events(stay.id)]
    assert topics[-1] == "services.admissions.domain:Stay.MessageReceiptRecorded"
