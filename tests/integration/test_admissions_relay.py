"""The admissions outbox relay on the real broker: a stay's events reach `admissions.events`
as public envelopes, routed by event type, with the wire data the pathway folds."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from services.admissions.application import AdmissionsApplication
from services.admissions.domain import AdmissionType, CloseReason, MessageType
from shared.apprec import AppRecStatus
from shared.broker import Tenant
from shared.events import Envelope
from shared.events import admissions as adm
from shared.ids import FNR_SYSTEM
from tests.conftest import HOSPITAL, MUNICIPALITY, OTHER_HOSPITAL
from tests.support import bind_test_queue, ctx, drain_queue, make_fnr, outbox_relay, unique_queue

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(3, 11, 38, 410)}
T0 = datetime(2026, 10, 5, 22, 15, tzinfo=UTC)
#: Bookkeeping events of the per-patient index (not clinical facts; consumers ignore them).
INDEX_EVENTS = {"StayIndexCreated", "StayIndexed"}


@pytest.fixture
def store(backend: dict[str, str]) -> Iterator[AdmissionsApplication]:
    app = AdmissionsApplication.from_url(backend["admissions"])
    yield app
    app.close()


def a_whole_stay(app: AdmissionsApplication) -> uuid.UUID:
    referral_id = uuid.uuid4()
    stay = app.admit_patient(
        ctx(HOSPITAL, "admit", T0),
        PATIENT,
        "Kirurgisk sengepost 2",
        AdmissionType.ELECTIVE,
        referral_id,
        MUNICIPALITY.her_id,
        True,
        False,
    )
    app.record_admission_report(ctx(MUNICIPALITY, "report", T0, hours=1), stay.id)
    stay = app.send_admission_notice(ctx(HOSPITAL, "notice", T0, hours=2), stay.id)
    notice = next(m for m in stay.messages.values() if m["type"] == MessageType.ADMISSION_NOTICE)
    app.record_message_receipt(
        ctx(MUNICIPALITY, "rcpt", T0, hours=3),
        stay.id,
        uuid.UUID(notice["message_id"]),
        AppRecStatus.OK,
        [],
    )
    app.send_health_information(ctx(HOSPITAL, "hi", T0, hours=4), stay.id)
    app.transfer_patient(
        ctx(HOSPITAL, "move", T0, hours=20), stay.id, OTHER_HOSPITAL.her_id, "Rehab"
    )
    app.close_stay(ctx(OTHER_HOSPITAL, "out", T0, hours=90), stay.id, CloseReason.DISCHARGED)
    return stay.id


def test_a_stays_events_are_published_to_admissions_events_as_envelopes(
    store: AdmissionsApplication, backend: dict[str, str], broker: Tenant, amqp_uri: str
) -> None:
    app = store
    queue = unique_queue("admissions")
    bind_test_queue(amqp_uri, "admissions.events", queue)
    stay_id = a_whole_stay(app)
    with outbox_relay(app, backend["admissions"], broker) as relay:
        while relay.relay_once():
            pass
    assert relay.position == app.recorder.max_notification_id()

    envelopes = [Envelope.from_json(b) for b in drain_queue(amqp_uri, queue)]
    assert all(e.source == "admissions" and e.patient == PATIENT for e in envelopes)
    stay_events = sorted(
        (e for e in envelopes if e.event_type not in INDEX_EVENTS),
        key=lambda e: e.aggregate_version,
    )
    assert {e.aggregate_id for e in stay_events} == {str(stay_id)}
    assert [e.event_type for e in stay_events] == [
        "PatientAdmitted",
        "AdmissionReportReceived",
        "AdmissionNoticeSent",
        "MessageReceiptRecorded",
        "HealthInformationSent",
        "PatientTransferred",
        "StayClosed",
    ]
    data = {e.event_type: e.data for e in stay_events}
    admitted = stay_events[0].payload(adm.PatientAdmitted)
    assert admitted.admission_type == "ELECTIVE"
    assert admitted.municipality_her_id == MUNICIPALITY.her_id
    report = stay_events[1].payload(adm.AdmissionReportReceived)
    assert (report.from_her_id, report.to_her_id) == (MUNICIPALITY.her_id, HOSPITAL.her_id)
    receipt = stay_events[3].payload(adm.MessageReceiptRecorded)
    assert data["AdmissionNoticeSent"] == adm.AdmissionNoticeSent(
        message_id=receipt.message_id, to_her_id=MUNICIPALITY.her_id
    )
    assert (receipt.status, receipt.errors) == ("OK", [])
    assert stay_events[4].payload(adm.HealthInformationSent).first is True
    assert data["PatientTransferred"] == adm.PatientTransferred(
        to_hospital_her_id=OTHER_HOSPITAL.her_id, to_ward="Rehab"
    )
    assert data["StayClosed"] == adm.StayClosed(reason="DISCHARGED")
    assert stay_events[-1].actor["her_id"] == OTHER_HOSPITAL.her_id
    assert stay_events[-1].occurred == T0 + timedelta(hours=90)
    assert not {e.event_type for e in envelopes} & INDEX_EVENTS  # bookkeeping stays inside
