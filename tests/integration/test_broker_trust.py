"""The broker trusts no one by default (issue 9, item 5), on the real RabbitMQ: each service is
a broker user of its own that may write only its own exchange and read only its own queues;
RabbitMQ vouches for the `user_id` of a message, consumers take an event only from its
service's user, and what a reaction does is the access policy's decision.

The forger in these stories is the broker's administrator of the session's vhost: a user who
may write to every exchange but is not the service (the worst case of a leaked credential)."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pika
import psycopg
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker
from sqlalchemy.engine import Engine

from services.admissions.application import AdmissionsApplication
from services.admissions.domain import AdmissionType, StayState
from services.discharges.application import DischargesApplication
from services.pathway import migrate, readmodel
from services.pathway.projector import QUEUE as PROJECTOR_QUEUE
from services.referrals.application import ReferralsApplication
from services.referrals.domain import Priority, ReferralState
from shared.actors import Actor
from shared.amqp import DEAD_LETTER_QUEUE, QUEUE_ARGUMENTS, BatchPublisher
from shared.apprec import AppRecStatus
from shared.broker import Tenant, load_definitions, rabbitmqctl
from shared.events import Envelope
from shared.events.discharges import PatientDischarged
from shared.ids import FNR_SYSTEM
from shared.outbox import iter_all_envelopes
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_HOSPITAL
from tests.processes import nameko
from tests.support import (
    ctx,
    drain_queue,
    dump_read_model,
    event_queues,
    make_fnr,
    projector_copy,
    projector_queue,
    run_projector,
    wait_for,
)

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(3, 9, 51, 220)}
NOW = datetime.now(UTC)
#: nameko's queue of the admissions reaction that closes a stay on discharge.
CLOSE_ON_DISCHARGE = (
    "evt-discharges-PatientDischarged--admissions_reactions.handle_patient_discharged"
)
STAYS_VIEW = "evt-admissions-PatientAdmitted--discharges_stays.handle_patient_admitted"


def refused(uri: str, attempt: Any) -> str:
    """What the broker answers when `attempt(channel)` is tried as the user of `uri`."""
    connection = pika.BlockingConnection(pika.URLParameters(uri))
    channel = connection.channel()
    channel.confirm_delivery()
    try:
        with pytest.raises(ChannelClosedByBroker) as closed:
            attempt(channel)
    finally:
        if connection.is_open:
            connection.close()
    return f"{closed.value.reply_code} {closed.value.reply_text}"


def dead_letters(amqp_uri: str, count: int) -> list[tuple[dict[str, Any], bytes]]:
    """Wait for `count` messages on the dead-letter queue; their headers and bodies."""
    found: list[tuple[dict[str, Any], bytes]] = []
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    channel = connection.channel()

    def arrived() -> bool:
        method, props, body = channel.basic_get(DEAD_LETTER_QUEUE, auto_ack=True)
        if method is not None:
            found.append((dict(props.headers or {}), body))
        return len(found) >= count

    try:
        wait_for(arrived, what=f"{count} messages on the dead-letter queue")
    finally:
        connection.close()
    return found


@pytest.fixture
def empty_dead_letters(amqp_uri: str) -> None:
    drain_queue(amqp_uri, DEAD_LETTER_QUEUE, delete=False)


def forge(amqp_uri: str, exchange: str, envelope: Envelope, user_id: str | None) -> None:
    """Publish `envelope` as the administrator, with `user_id` (None: none at all)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    channel = connection.channel()
    channel.confirm_delivery()
    properties = pika.BasicProperties(
        content_type="application/json", delivery_mode=2, user_id=user_id
    )
    channel.basic_publish(
        exchange, envelope.event_type, envelope.to_json(), properties, mandatory=True
    )
    connection.close()


# --- who may write and read what --------------------------------------------------------------


def test_a_relay_cannot_publish_to_another_services_exchange(broker: Tenant) -> None:
    def publish_as_discharges(channel: BlockingChannel) -> None:
        channel.basic_publish(
            "discharges.events",
            "PatientDischarged",
            b"{}",
            pika.BasicProperties(user_id=broker.user("referrals")),
        )

    answer = refused(broker.uri("referrals"), publish_as_discharges)
    assert answer.startswith("403 ACCESS_REFUSED")
    assert "exchange 'discharges.events'" in answer


def test_the_broker_refuses_a_user_id_that_is_not_the_publishers_own(broker: Tenant) -> None:
    def claim_to_be_discharges(channel: BlockingChannel) -> None:
        channel.basic_publish(
            "referrals.events",
            "ReferralSent",
            b"{}",
            pika.BasicProperties(user_id=broker.user("discharges")),
        )

    answer = refused(broker.uri("referrals"), claim_to_be_discharges)
    assert answer.startswith("406 PRECONDITION_FAILED")
    assert "user_id" in answer


def test_a_consumer_cannot_read_another_services_queue(broker: Tenant) -> None:
    def read(queue: str) -> Any:
        return lambda channel: channel.basic_get(queue)

    assert refused(broker.uri("admissions"), read(STAYS_VIEW)).startswith("403 ACCESS_REFUSED")
    assert refused(broker.uri("admissions"), read(PROJECTOR_QUEUE)).startswith("403")
    assert refused(broker.uri("pathway"), read(CLOSE_ON_DISCHARGE)).startswith("403")
    assert refused(broker.uri("medications"), read(PROJECTOR_QUEUE)).startswith("403")


def test_a_consumer_cannot_bind_its_own_queue_to_another_exchange(broker: Tenant) -> None:
    """Reading a queue of one's own is no way into other events: binding needs write access to
    the queue and read access to the exchange, and a service user has neither."""

    def listen_to_medications(channel: BlockingChannel) -> None:
        channel.queue_bind(CLOSE_ON_DISCHARGE, "medications.events", "#")

    answer = refused(broker.uri("admissions"), listen_to_medications)
    assert answer.startswith("403 ACCESS_REFUSED")


def test_the_dead_letter_operator_may_read_only_the_dead_letters_and_put_back_only(
    broker: Tenant,
) -> None:
    """`python -m shared.deadletters` runs as a user that reads carepath.dead-letter and writes
    the default exchange (a replay into a consumer's queue), nothing else; a service that
    consumes nothing may not send a message to be tried again."""
    operator = broker.uri("deadletters")

    def read(queue: str) -> Any:
        return lambda channel: channel.basic_get(queue)

    def publish(exchange: str) -> Any:
        return lambda channel: channel.basic_publish(exchange, "PatientDischarged", b"{}")

    assert refused(operator, read(PROJECTOR_QUEUE)).startswith("403 ACCESS_REFUSED")
    assert refused(operator, read(CLOSE_ON_DISCHARGE)).startswith("403 ACCESS_REFUSED")
    assert refused(operator, publish("discharges.events")).startswith("403 ACCESS_REFUSED")
    assert refused(operator, publish("carepath.retry.1")).startswith("403 ACCESS_REFUSED")
    assert refused(broker.uri("medications"), publish("carepath.retry.1")).startswith("403")
    assert refused(broker.uri("admissions"), publish("")).startswith("403 ACCESS_REFUSED")


# --- the topology is the definitions' --------------------------------------------------------


def test_the_topology_exists_before_any_process_starts(broker: Tenant) -> None:
    """Every exchange, queue and binding of infra/rabbitmq/definitions.json is on the broker
    once it is provisioned, before any relay, projector or reaction has connected."""
    listed = subprocess.run(
        [rabbitmqctl(), "-q", "list_bindings", "-p", broker.vhost, "source_name",
         "destination_name", "routing_key"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    bindings = {tuple(line.split("\t")) for line in listed}
    definitions = load_definitions()
    for binding in definitions["bindings"]:
        assert (binding["source"], binding["destination"], binding["routing_key"]) in bindings
    queues = subprocess.run(
        [rabbitmqctl(), "-q", "list_queues", "-p", broker.vhost, "name", "type"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    types = dict(line.split("\t") for line in queues)
    for queue in definitions["queues"]:
        assert types[queue["name"]] == "quorum"


def test_an_admission_published_before_the_reaction_ever_ran_reaches_it(
    backend: dict[str, str], broker: Tenant, amqp_uri: str
) -> None:
    """No event depends on which process starts first: the reaction's queue is there (and
    bound) from the definitions, so it keeps what was published while no reaction ran."""
    admissions = AdmissionsApplication.from_url(backend["admissions"])
    discharges = DischargesApplication.from_url(backend["discharges"])
    module = "services.discharges.reactions"
    drain_queue(amqp_uri, STAYS_VIEW, delete=False)
    try:
        stay = admissions.admit_patient(
            ctx(HOSPITAL, "admit-early", NOW, hours=-5), PATIENT, "Medisinsk sengepost 1",
            AdmissionType.ACUTE, None, MUNICIPALITY.her_id, True, False,
        )  # fmt: skip
        publisher = BatchPublisher(broker.uri("admissions"), "admissions")
        publisher.publish(list(iter_all_envelopes("admissions", admissions)))
        publisher.close()
        assert STAYS_VIEW in event_queues(module)
        with nameko(module, broker, backend, purge_first=False):
            known = wait_for(lambda: discharges.stays.get(stay.id), what="the stay to be known")
        assert known.hospital_her_id == HOSPITAL.her_id
    finally:
        admissions.close()
        discharges.close()


def test_a_message_returned_too_often_is_dead_lettered_by_the_broker(
    broker: Tenant, amqp_uri: str, empty_dead_letters: None
) -> None:
    """A consumer that fails on a message again and again (returns it to the queue) does not
    hold it for ever: after the queue's delivery limit RabbitMQ moves it to the dead-letter
    queue."""
    queue = projector_queue("limit")
    projector_copy(broker, queue)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish("", queue, b'{"poison": true}')
    deliveries = 0
    while deliveries < 50:
        # The returned message is back in the queue a moment after the nack.
        deadline = time.monotonic() + 3
        method = None
        while method is None and time.monotonic() < deadline:
            method, _props, _body = channel.basic_get(queue)
        if method is None:
            break
        deliveries += 1
        channel.basic_nack(method.delivery_tag, requeue=True)
    channel.queue_delete(queue)
    connection.close()
    assert deliveries == QUEUE_ARGUMENTS["x-delivery-limit"] + 1
    ((headers, body),) = dead_letters(amqp_uri, 1)
    assert body == b'{"poison": true}'
    assert headers["x-first-death-reason"] == "delivery_limit"
    assert headers["x-first-death-queue"] == queue


# --- consumers take an event only from its service -------------------------------------------


def referral_sent(patient: dict[str, str]) -> list[Envelope]:
    app = ReferralsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.send_referral(
        ctx(GP, f"send-{uuid.uuid4().hex[:6]}", NOW, hours=-2), patient, HOSPITAL.her_id, "x",
        Priority.ROUTINE, None,
    )  # fmt: skip
    return list(iter_all_envelopes("referrals", app))


def test_a_forged_event_is_dead_lettered_by_the_projector_and_changes_nothing(
    engine: Engine, broker: Tenant, amqp_uri: str, empty_dead_letters: None
) -> None:
    forged_patient = {"system": FNR_SYSTEM, "value": make_fnr(4, 9, 51, 230)}
    (forged,) = referral_sent(forged_patient)
    (genuine,) = referral_sent(PATIENT)
    queue = projector_queue("trust")
    projector, stop = run_projector(engine, broker, queue)
    try:
        assert projector.ready.wait(30), "the projector consumes its queue"
        forge(amqp_uri, "referrals.events", forged, user_id=None)
        forge(amqp_uri, "referrals.events", forged, user_id="guest")
        publisher = BatchPublisher(broker.uri("referrals"), "referrals")
        publisher.publish([genuine])  # comes after the forgeries on the same queue
        publisher.close()
        parked = dead_letters(amqp_uri, 2)
        stored = wait_for(
            lambda: dump_read_model(engine)["pathway_events"], what="the genuine event projected"
        )
    finally:
        stop.set()
    drain_queue(amqp_uri, queue)
    assert [row[0] for row in stored] == [genuine.event_id]
    reasons = sorted(headers["x-carepath-reason"] for headers, _body in parked)
    expected = broker.user("referrals")
    assert reasons == [
        f"untrusted sender on referrals.events: 'guest', expected user_id '{expected}'",
        f"untrusted sender on referrals.events: no user_id, expected user_id '{expected}'",
    ]
    assert all(Envelope.from_json(body).event_id == forged.event_id for _h, body in parked)


def discharged(stay_id: uuid.UUID, actor: Actor) -> Envelope:
    """A PatientDischarged of the stay, as the discharges service would publish it."""
    discharge_id = str(uuid.uuid4())
    return Envelope(
        event_id=f"{discharge_id}:3",
        aggregate_id=discharge_id,
        aggregate_version=3,
        patient=PATIENT,
        occurred_at=NOW.isoformat(),
        recorded_at=NOW.isoformat(),
        actor={"her_id": actor.her_id, "org_kind": actor.org_kind.value},
        correlation_id="trust",
        causation_id="discharge",
        data=PatientDischarged(
            stay_id=str(stay_id),
            destination="HOME",
            destination_her_id=None,
            report_message_id=None,
            notice_message_id=None,
        ),
    )


@pytest.fixture
def admissions(backend: dict[str, str]) -> Iterator[AdmissionsApplication]:
    app = AdmissionsApplication.from_url(backend["admissions"])
    yield app
    app.close()


def open_stay(app: AdmissionsApplication) -> uuid.UUID:
    stay = app.admit_patient(
        ctx(HOSPITAL, f"admit-{uuid.uuid4().hex[:6]}", NOW, hours=-48), PATIENT,
        "Kirurgisk sengepost 2",
        AdmissionType.ACUTE, None, MUNICIPALITY.her_id, True, False,
    )  # fmt: skip
    return stay.id


def test_one_forged_patient_discharged_no_longer_closes_a_stay(
    admissions: AdmissionsApplication,
    backend: dict[str, str],
    broker: Tenant,
    amqp_uri: str,
    empty_dead_letters: None,
) -> None:
    """The issue's attack: a PatientDischarged naming the stay's own hospital as actor, put on
    discharges.events by someone who is not the discharges service."""
    stay_id = open_stay(admissions)
    forged = discharged(stay_id, HOSPITAL)
    with nameko("services.admissions.reactions", broker, backend):
        forge(amqp_uri, "discharges.events", forged, user_id=None)
        forge(amqp_uri, "discharges.events", forged, user_id="guest")
        parked = dead_letters(amqp_uri, 2)
        assert admissions.get_stay(stay_id).state is StayState.OPEN
        # The same event from the discharges service closes the stay: the channel decides.
        publisher = BatchPublisher(broker.uri("discharges"), "discharges")
        publisher.publish([forged])
        publisher.close()
        wait_for(
            lambda: admissions.get_stay(stay_id).state is StayState.CLOSED,
            what="the stay closed by the genuine discharge",
        )
    for headers, body in parked:
        assert headers["x-carepath-reason"].startswith("untrusted sender on discharges.events")
        assert headers["x-original-exchange"] == "discharges.events"
        assert Envelope.from_json(body).event_id == forged.event_id


def test_a_discharge_by_a_hospital_not_of_the_stay_is_refused_by_the_access_policy(
    admissions: AdmissionsApplication,
    backend: dict[str, str],
    broker: Tenant,
    amqp_uri: str,
    empty_dead_letters: None,
) -> None:
    stay_id = open_stay(admissions)
    elsewhere = discharged(stay_id, OTHER_HOSPITAL)
    with nameko("services.admissions.reactions", broker, backend):
        publisher = BatchPublisher(broker.uri("discharges"), "discharges")
        publisher.publish([elsewhere])
        publisher.close()
        ((headers, _body),) = dead_letters(amqp_uri, 1)
    assert headers["x-carepath-reason"] == (
        "stay not closed: AdmissionService/CloseStay refused to HOSPITAL "
        f"{OTHER_HOSPITAL.her_id}: no care relationship with the patient"
    )
    assert admissions.get_stay(stay_id).state is StayState.OPEN


def test_an_admission_for_another_hospitals_referral_does_not_complete_it(
    backend: dict[str, str], broker: Tenant, amqp_uri: str, empty_dead_letters: None
) -> None:
    referrals = ReferralsApplication.from_url(backend["referrals"])
    admissions = AdmissionsApplication.from_url(backend["admissions"])
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
        admissions.admit_patient(
            ctx(OTHER_HOSPITAL, "admit-elsewhere", NOW, hours=-1), PATIENT, "Ortopedisk sengepost",
            AdmissionType.ELECTIVE, referral.id, MUNICIPALITY.her_id, True, False,
        )  # fmt: skip
        with nameko("services.referrals.reactions", broker, backend):
            publisher = BatchPublisher(broker.uri("admissions"), "admissions")
            publisher.publish(list(iter_all_envelopes("admissions", admissions)))
            publisher.close()
            ((headers, _body),) = dead_letters(amqp_uri, 1)
        assert headers["x-carepath-reason"] == (
            "referral not completed: ReferralService/CompleteReferral refused to HOSPITAL "
            f"{OTHER_HOSPITAL.her_id}: no care relationship with the patient"
        )
        assert referrals.get_referral(referral.id).state is ReferralState.ACCEPTED
    finally:
        referrals.close()
        admissions.close()


def test_a_read_model_outage_returns_a_batch_once_not_until_the_delivery_limit(
    postgres_url: str, broker: Tenant, amqp_uri: str, empty_dead_letters: None
) -> None:
    """While the read model is down the projector does not take its batch again and again
    (each return counts towards the queue's delivery limit): it waits for the database, so an
    event survives an outage longer than ten retries would take and is projected after."""
    engine = readmodel.create_engine(postgres_url)
    migrate.upgrade(engine)
    database = postgres_url.rsplit("/", 1)[1]
    admin = postgres_url.rsplit("/", 1)[0] + "/postgres"
    queue = projector_queue("outage")
    projector, stop = run_projector(engine, broker, queue)
    (event,) = referral_sent(PATIENT)
    try:
        assert projector.ready.wait(30), "the projector consumes its queue"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )
        publisher = BatchPublisher(broker.uri("referrals"), "referrals")
        publisher.publish([event])
        publisher.close()
        time.sleep(8)  # the outage: retrying every 0.2 s would have used up the limit
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        stored = wait_for(
            lambda: dump_read_model(engine)["pathway_events"], what="the event projected"
        )
    finally:
        stop.set()
        engine.dispose()
    drain_queue(amqp_uri, queue)
    assert [row[0] for row in stored] == [event.event_id]
    assert drain_queue(amqp_uri, DEAD_LETTER_QUEUE, delete=False) == []
