"""The nameko reactions, each run as the real process (`nameko run`) against the real broker
and store: events published by one service's relay change another service's state.

nameko containers are never started in the test process (without eventlet's monkey-patching
they hang); the processes get PSYCOPG_WAIT_FUNC=wait_select for PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pika

from services.admissions.application import AdmissionsApplication
from services.admissions.domain import AdmissionType, StayState
from services.discharges.application import DischargesApplication
from services.discharges.domain import Destination
from services.referrals.application import ReferralsApplication
from services.referrals.domain import Priority, ReferralState
from shared.amqp import DEAD_LETTER_QUEUE, BatchPublisher, declare_dead_letter
from shared.apprec import AppRecStatus
from shared.broker import Tenant
from shared.events import Envelope
from shared.events.discharges import PatientDischarged
from shared.ids import FNR_SYSTEM
from shared.outbox import iter_all_envelopes
from shared.store import CarepathApplication
from tests.conftest import GP, HOSPITAL, MUNICIPALITY
from tests.processes import nameko
from tests.support import ctx, make_fnr, outbox_relay, wait_for

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(12, 4, 47, 310)}
NOW = datetime.now(UTC)
ROOT = Path(__file__).resolve().parents[2]


def relay(app: CarepathApplication, url: str, broker: Tenant) -> int:
    """Publish everything `app` stored so far, as its relay process does (as its service's
    broker user)."""
    with outbox_relay(app, url, broker) as relayed:
        return relayed.relay_once()


def admit(
    app: AdmissionsApplication, referral_id: uuid.UUID | None = None, command_id: str = "admit"
) -> uuid.UUID:
    stay = app.admit_patient(
        ctx(HOSPITAL, command_id, NOW, hours=-72),
        PATIENT,
        "Kirurgisk sengepost 2",
        AdmissionType.ELECTIVE if referral_id else AdmissionType.ACUTE,
        referral_id,
        MUNICIPALITY.her_id,
        True,
        False,
    )
    return stay.id


def test_an_admission_published_by_admissions_lets_discharges_accept_readiness(
    backend: dict[str, str], broker: Tenant
) -> None:
    admissions = AdmissionsApplication.from_url(backend["admissions"])
    discharges = DischargesApplication.from_url(backend["discharges"])
    try:
        with nameko("services.discharges.reactions", broker, backend):
            stay_id = admit(admissions)
            assert relay(admissions, backend["admissions"], broker) >= 1
            known = wait_for(lambda: discharges.stays.get(stay_id), what="the stay to be known")
            assert (known.state, known.hospital_her_id) == ("OPEN", HOSPITAL.her_id)
            ready = discharges.declare_ready(ctx(HOSPITAL, "ready", NOW, hours=-24), stay_id)
            assert ready.municipality_her_id == MUNICIPALITY.her_id
    finally:
        admissions.close()
        discharges.close()


def test_a_discharge_closes_the_stay_in_admissions_once_however_often_delivered(
    backend: dict[str, str], broker: Tenant
) -> None:
    admissions = AdmissionsApplication.from_url(backend["admissions"])
    discharges = DischargesApplication.from_url(backend["discharges"])
    try:
        with nameko("services.admissions.reactions", broker, backend):
            stays = [admit(admissions, command_id=f"admit-{i}") for i in range(2)]
            for stay_id in stays:
                discharges.stays.admitted(
                    str(stay_id), PATIENT, HOSPITAL.her_id, MUNICIPALITY.her_id
                )
            discharges.discharge(
                ctx(HOSPITAL, "out", NOW, hours=-1), stays[0], Destination.HOME, None
            )
            relay(discharges, backend["discharges"], broker)
            wait_for(
                lambda: admissions.get_stay(stays[0]).state is StayState.CLOSED,
                what="the stay to be closed",
            )
            stored = admissions.recorder.max_notification_id()
            (discharged,) = [
                e
                for e in iter_all_envelopes("discharges", discharges)
                if e.event_type == "PatientDischarged"
            ]
            publisher = BatchPublisher(broker.uri("discharges"), "discharges")
            publisher.publish([discharged, discharged])  # redelivered twice
            publisher.close()
            # A later discharge, processed after the duplicates, tells when they were handled.
            discharges.discharge(
                ctx(HOSPITAL, "out-2", NOW, hours=-1), stays[1], Destination.HOME, None
            )
            relay(discharges, backend["discharges"], broker)
            wait_for(
                lambda: admissions.get_stay(stays[1]).state is StayState.CLOSED,
                what="the second stay to be closed",
            )
        assert admissions.recorder.max_notification_id() == (stored or 0) + 1
        closed = admissions.get_stay(stays[0])
        assert closed.closed_at == (NOW - timedelta(hours=1)).isoformat()
    finally:
        admissions.close()
        discharges.close()


def test_an_elective_admission_for_an_accepted_referral_completes_it(
    backend: dict[str, str], broker: Tenant
) -> None:
    admissions = AdmissionsApplication.from_url(backend["admissions"])
    referrals = ReferralsApplication.from_url(backend["referrals"])
    try:
        referral = referrals.send_referral(
            ctx(GP, "send", NOW, hours=-200),
            PATIENT,
            HOSPITAL.her_id,
            "kneprotese",
            Priority.ROUTINE,
            None,
        )
        referrals.record_receipt(
            ctx(HOSPITAL, "rec", NOW, hours=-199), referral.id, AppRecStatus.OK, []
        )
        referrals.accept(ctx(HOSPITAL, "acc", NOW, hours=-150), referral.id, date.today())
        with nameko("services.referrals.reactions", broker, backend):
            admit(admissions, referral_id=referral.id)
            relay(admissions, backend["admissions"], broker)
            completed = wait_for(
                lambda: referrals.get_referral(referral.id).state is ReferralState.COMPLETED,
                what="the referral to be completed",
            )
        assert completed
        assert referrals.get_referral(referral.id).version == 4
    finally:
        admissions.close()
        referrals.close()


def test_a_discharge_that_cannot_close_its_stay_is_dead_lettered_with_the_reason(
    backend: dict[str, str], broker: Tenant, amqp_uri: str
) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    channel = connection.channel()
    declare_dead_letter(channel)
    channel.queue_purge(DEAD_LETTER_QUEUE)
    unknown_stay = str(uuid.uuid4())
    discharge_id = str(uuid.uuid4())
    envelope = Envelope(
        event_id=f"{discharge_id}:2",
        aggregate_id=discharge_id,
        aggregate_version=2,
        patient=PATIENT,
        occurred_at=NOW.isoformat(),
        recorded_at=NOW.isoformat(),
        actor={"her_id": HOSPITAL.her_id, "org_kind": "HOSPITAL"},
        correlation_id="c",
        causation_id="discharge",
        data=PatientDischarged(
            stay_id=unknown_stay,
            destination="HOME",
            destination_her_id=None,
            report_message_id=None,
            notice_message_id=None,
        ),
    )
    try:
        with nameko("services.admissions.reactions", broker, backend):
            publisher = BatchPublisher(broker.uri("discharges"), "discharges")
            publisher.publish([envelope])
            publisher.close()

            def parked() -> tuple[object, bytes] | None:
                method, props, body = channel.basic_get(DEAD_LETTER_QUEUE, auto_ack=True)
                return (props, body) if method is not None else None

            props, body = wait_for(parked, what="the event on the dead-letter queue")
    finally:
        connection.close()
    assert Envelope.from_json(body).event_id == envelope.event_id
    assert "no such resource" in props.headers["x-carepath-reason"]  # type: ignore[attr-defined]
    assert props.headers["x-original-exchange"] == "discharges.events"  # type: ignore[attr-defined]
