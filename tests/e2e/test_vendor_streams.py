"""Vendors' event streams on the real broker: subscriptions provisioned by carepath, a plain
pika consumer with the provisioned credentials, the delivery process in between.

The whole path runs (tests/support.py): a doctor's command over gRPC → the medication store →
the relay → medications.events → streams.delivery → carepath.vendor → the vendor's own queue.
Who lives where comes from the registry (the register adapter records it, the projector folds
it into the access facts). Fjordvik (MUNICIPALITY) has two patients, the other municipality
one; the vendors' subscriptions serve one municipality each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pika
import pytest
import sqlalchemy as sa
from fhir.resources.bundle import Bundle
from fhir.resources.subscriptionstatus import SubscriptionStatus
from pika.exceptions import ChannelClosedByBroker, ProbableAuthenticationError

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    medications_pb2,
    medications_pb2_grpc,
    streams_pb2,
    streams_pb2_grpc,
)
from services.registry.domain import RegistryKind
from services.streams import api as streams_api
from services.streams.application import StreamsApplication
from services.streams.delivery import QUEUE as DELIVERY_QUEUE
from services.streams.delivery import Delivery
from services.streams.domain import NotificationFormat
from services.streams.notifications import native_message
from services.streams.provisioning import VENDOR_EXCHANGE, VendorBroker
from services.streams.purposes import SubscriptionPurpose
from shared import bootstrap, config
from shared.access.model import OPERATOR_ROLE, blocks, organisations
from shared.actors import Actor, OrgKind
from shared.audit.log import AuditLog, accesses
from shared.broker import Tenant
from shared.events import CURRENT_CONTRACT
from shared.grpc_server import Server
from shared.ids import FNR_SYSTEM
from shared.sql import engine
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_MUNICIPALITY, STORES
from tests.support import (
    LOOPBACK,
    REGISTER_ADAPTER,
    Harness,
    admin_uri,
    auth,
    ctx,
    drain_queue,
    make_fnr,
    meta,
    projector_queue,
    purge_queues,
    running_system,
    wait_for,
)

P1 = {"system": FNR_SYSTEM, "value": make_fnr(12, 3, 42, 480)}  # lives in Fjordvik
P2 = {"system": FNR_SYSTEM, "value": make_fnr(1, 2, 53, 300)}  # lives in the other municipality
P3 = {"system": FNR_SYSTEM, "value": make_fnr(7, 9, 38, 200)}  # lives in Fjordvik
P4 = {"system": FNR_SYSTEM, "value": make_fnr(23, 5, 61, 150)}  # lives in Fjordvik
VENDOR = ("7766001", "Fjordvik EPJ AS")
OTHER_VENDOR = ("7766002", "Nordkyst Velferdsteknologi AS")
OPERATOR = Actor("112374", OrgKind.REGISTRY, roles=frozenset({OPERATOR_ROLE}))


@dataclass
class World:
    system: Harness
    broker: Tenant
    subscriptions: streams_api.Subscriptions
    passwords: dict[str, str]
    delivery: Delivery
    admin_server: Server
    urls: dict[str, str]

    def vendor(self, name: str) -> pika.BlockingConnection:
        """A plain pika connection with the subscription's provisioned credentials."""
        user = self.subscriptions.broker.user(name)
        uri = config.with_credentials(self.broker.address, user, self.passwords[name])
        return pika.BlockingConnection(pika.URLParameters(uri))

    def prescribe(self, doctor: Actor, patient: dict[str, str], reason: str) -> None:
        stub = medications_pb2_grpc.MedicationServiceStub(
            self.system.channel(self.system.servers["medications"])
        )
        stub.PrescribeMedication(
            medications_pb2.PrescribeMedicationRequest(
                metadata=meta(f"rx-{uuid.uuid4()}", days=-1),
                patient=common_pb2.PatientIdentifier(**patient),
                medication=medications_pb2.Medication(atc_code="A10BA02", name="Metformin"),
                dose="500 mg x 2",
                reason=reason,
            ),
            metadata=auth(doctor),
        )

    def admit(self, hospital: Actor, patient: dict[str, str]) -> None:
        stub = admissions_pb2_grpc.AdmissionServiceStub(
            self.system.channel(self.system.servers["admissions"])
        )
        stub.AdmitPatient(
            admissions_pb2.AdmitPatientRequest(
                metadata=meta(f"admit-{uuid.uuid4()}", hours=-2),
                patient=common_pb2.PatientIdentifier(**patient),
                ward="Medisinsk sengepost 3",
                admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
                municipality_her_id=MUNICIPALITY.her_id,
                municipal_services_likely=True,
                existing_service_user=False,
            ),
            metadata=auth(hospital),
        )


def register_organisation(system: Harness, her_id: str, kind: RegistryKind, name: str) -> None:
    registry = system.apps["registry"]
    registry.register_organisation(ctx(REGISTER_ADAPTER), her_id, kind, name, None)  # type: ignore[attr-defined]

    def known() -> bool:
        with system.engine.connect() as conn:
            o = organisations
            return (
                conn.execute(sa.select(o.c.her_id).where(o.c.her_id == her_id)).first() is not None
            )

    wait_for(known, 30, f"organisation {her_id} in the directory")


@pytest.fixture(scope="module")
def world(
    broker: Tenant, amqp_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("streams")
    urls = {name: f"sqlite:///{tmp}/{name}.sqlite" for name in (*STORES, "streams")}
    purge_queues(amqp_uri, [DELIVERY_QUEUE])
    queue = projector_queue("streams")
    with running_system(urls, broker, queue) as system:
        for her_id, kind, name in (
            (MUNICIPALITY.her_id, RegistryKind.MUNICIPALITY, "Fjordvik kommune"),
            (OTHER_MUNICIPALITY.her_id, RegistryKind.MUNICIPALITY, "Nordkyst kommune"),
            (VENDOR[0], RegistryKind.REGISTRY, VENDOR[1]),
            (OTHER_VENDOR[0], RegistryKind.REGISTRY, OTHER_VENDOR[1]),
        ):
            register_organisation(system, her_id, kind, name)
        system.register(P1, municipality=MUNICIPALITY.her_id, gp=GP)
        system.register(P3, municipality=MUNICIPALITY.her_id, gp=GP)
        system.register(P4, municipality=MUNICIPALITY.her_id, gp=GP)
        system.register(P2, municipality=OTHER_MUNICIPALITY.her_id, gp=GP)
        app = StreamsApplication.from_url(urls["streams"])
        facts = system.access["pathway"].facts
        subscriptions = streams_api.Subscriptions(
            app, streams_api.Directory(facts), VendorBroker(broker.vhost, broker.prefix)
        )
        audit = AuditLog(system.audit_engine, "streams-test")
        log_engine = engine(urls["streams"])
        delivery = Delivery(app, log_engine, facts, audit, broker.uri("streams"))
        stop = threading.Event()
        thread = threading.Thread(target=delivery.run, args=(stop,), daemon=True)
        thread.start()
        assert delivery.ready.wait(30), "the delivery did not consume its queue"
        control = bootstrap.access_control(
            "streams", streams_api.resolvers(app), system.access["pathway"]
        )
        # The server provisions on AMQP_URI's vhost, as a process configured for it does.
        patch = pytest.MonkeyPatch()
        patch.setenv("AMQP_URI", broker.address)
        admin_server = bootstrap.grpc_server(
            app, streams_api, control, system.tokens["pathway"], LOOPBACK
        )
        world = World(system, broker, subscriptions, {}, delivery, admin_server, urls)
        try:
            yield world
        finally:
            admin_server.stop(0)
            patch.undo()
            stop.set()
            thread.join(timeout=15)
            for s in app.subscriptions():
                subscriptions.delete(ctx(OPERATOR), s.name)
            audit.close()
            log_engine.dispose()
            app.close()
    drain_queue(amqp_uri, queue)


def subscribe(
    world: World,
    name: str,
    served: str,
    purpose: SubscriptionPurpose = SubscriptionPurpose.HEALTH_CARE,
    event_types: tuple[str, ...] = ("MedicationPrescribed",),
    free_text: bool = False,
    vendor: str = VENDOR[0],
    notification_format: NotificationFormat = NotificationFormat.NATIVE,
) -> None:
    _, password = world.subscriptions.create(
        ctx(OPERATOR), name, vendor, "", purpose, list(event_types), [], [served], free_text,
        notification_format=notification_format,
    )  # fmt: skip
    world.passwords[name] = password


def received(world: World, name: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    """The next `count` messages of the subscription's queue, read as the vendor (acked)."""
    got: list[dict[str, Any]] = []
    connection = world.vendor(name)
    channel = connection.channel()

    def more() -> bool:
        method, props, body = channel.basic_get(f"vendor.{name}", auto_ack=True)
        if method is not None:
            message = json.loads(body)
            message["_content_type"] = props.content_type
            message["_user_id"] = props.user_id
            message["_position_header"] = (props.headers or {}).get("x-carepath-position")
            message["_contract_header"] = (props.headers or {}).get("x-carepath-contract")
            got.append(message)
        return len(got) >= count

    wait_for(more, timeout, f"{count} messages for {name}")
    connection.close()
    return got


def queued(world: World, name: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(admin_uri(world.broker)))
    count = connection.channel().queue_declare(f"vendor.{name}", passive=True).method.message_count
    connection.close()
    return int(count)


def refused(world: World, name: str, act: Any) -> int:
    """The AMQP reply code when the vendor's connection tries `act(channel)`."""
    connection = world.vendor(name)
    try:
        with pytest.raises(ChannelClosedByBroker) as caught:
            act(connection.channel())
        return int(caught.value.reply_code)
    finally:
        if connection.is_open:
            connection.close()


def test_a_municipalitys_vendor_gets_only_its_patients_events_minimised(world: World) -> None:
    subscribe(world, "fjordvik-ehr", MUNICIPALITY.her_id)
    subscribe(
        world, "fjordvik-plan", MUNICIPALITY.her_id,
        purpose=SubscriptionPurpose.SERVICE_PLANNING, free_text=True,
    )  # fmt: skip
    subscribe(
        world, "nordkyst-ehr", OTHER_MUNICIPALITY.her_id, free_text=True, vendor=OTHER_VENDOR[0]
    )
    world.prescribe(MUNICIPALITY, P1, "Diabetes type 2, oppfølging i hjemmesykepleien")
    world.prescribe(OTHER_MUNICIPALITY, P2, "Hypertensjon")

    (ehr,) = received(world, "fjordvik-ehr", 1)
    assert ehr["event_type"] == "MedicationPrescribed"
    assert ehr["patient"] == P1
    assert "reason" not in ehr["data"]
    assert ehr["omitted"] == ["data.reason"]
    assert ehr["actor"]["hpr"] == MUNICIPALITY.hpr  # a record system needs who prescribed
    assert ehr["_user_id"] == world.broker.user("streams")
    assert ehr["position"] == ehr["_position_header"] > 0
    assert ehr["contract"] == ehr["_contract_header"] == "carepath.vendor/3"  # the current

    (plan,) = received(world, "fjordvik-plan", 1)
    assert plan["event_id"] == ehr["event_id"] and plan["position"] == ehr["position"]
    assert plan["patient"] == {}
    assert plan["data"]["reason"].startswith("Diabetes")  # free text allowed here
    assert "actor.hpr" in plan["omitted"] and "hpr" not in plan["actor"]

    (other,) = received(world, "nordkyst-ehr", 1)
    assert other["patient"] == P2
    assert other["data"]["reason"] == "Hypertensjon"
    assert queued(world, "fjordvik-ehr") == 0 and queued(world, "nordkyst-ehr") == 0


def test_a_vendor_is_refused_any_other_queue_or_exchange(world: World) -> None:
    subscribe(world, "refused-ehr", MUNICIPALITY.her_id)
    subscribe(world, "refused-other", OTHER_MUNICIPALITY.her_id, vendor=OTHER_VENDOR[0])
    access_refused = 403
    consume = lambda queue: lambda ch: ch.basic_consume(queue, lambda *_: None)  # noqa: E731
    for queue in ("vendor.refused-other", "vendor.refused-ehr.dead-letter", DELIVERY_QUEUE,
                  "pathway.projector", "carepath.dead-letter"):  # fmt: skip
        assert refused(world, "refused-ehr", consume(queue)) == access_refused, queue
    for exchange in (VENDOR_EXCHANGE, "medications.events", "carepath.dlx"):
        # a publish is refused asynchronously: the next synchronous call sees the closed channel
        def publish(ch: Any, exchange: str = exchange) -> None:
            ch.basic_publish(exchange, "vendor.refused-other", b"{}")
            ch.queue_declare("vendor.refused-ehr", passive=True)

        assert refused(world, "refused-ehr", publish) == access_refused, exchange
    assert refused(world, "refused-ehr", lambda ch: ch.queue_declare("vendor.mine")) == (
        access_refused
    )
    assert refused(
        world, "refused-ehr",
        lambda ch: ch.queue_bind("vendor.refused-ehr", "medications.events", "#"),
    ) == access_refused  # fmt: skip
    # ... and may read its own queue
    connection = world.vendor("refused-ehr")
    connection.channel().basic_consume("vendor.refused-ehr", lambda *_: None)
    connection.close()


def test_a_patients_block_stops_delivery_to_the_blocked_municipalitys_subscription(
    world: World,
) -> None:
    subscribe(world, "blocked-ehr", MUNICIPALITY.her_id)
    registry = world.system.apps["registry"]
    registry.block(ctx(REGISTER_ADAPTER), P1, MUNICIPALITY.her_id, None)  # type: ignore[attr-defined]

    def blocked() -> bool:
        with world.system.engine.connect() as conn:
            return (
                conn.execute(
                    sa.select(blocks.c.block_id).where(blocks.c.her_id == MUNICIPALITY.her_id)
                ).first()
                is not None
            )

    wait_for(blocked, 30, "the block in the access facts")
    world.prescribe(GP, P1, "Blocked from the municipality")  # the fastlege still cares
    world.prescribe(GP, P3, "Sentinel after the blocked one")  # delivered after it, in order
    got = received(world, "blocked-ehr", 1)
    assert [m["patient"] for m in got] == [P3]
    assert queued(world, "blocked-ehr") == 0


def test_a_patients_block_of_the_vendors_own_organisation_stops_its_delivery(
    world: World,
) -> None:
    subscribe(world, "vendor-blocked", MUNICIPALITY.her_id, vendor=OTHER_VENDOR[0])
    registry = world.system.apps["registry"]
    registry.block(ctx(REGISTER_ADAPTER), P4, OTHER_VENDOR[0], None)  # type: ignore[attr-defined]

    def blocked() -> bool:
        b = blocks
        query = sa.select(b.c.block_id).where(b.c.her_id == OTHER_VENDOR[0])
        with world.system.engine.connect() as conn:
            return conn.execute(query).first() is not None

    wait_for(blocked, 30, "the block in the access facts")
    world.prescribe(MUNICIPALITY, P4, "Blocked from the vendor")
    world.prescribe(MUNICIPALITY, P3, "Sentinel after the blocked one")
    got = received(world, "vendor-blocked", 1)
    assert [m["patient"] for m in got] == [P3]
    assert queued(world, "vendor-blocked") == 0


def test_pause_stops_delivery_and_resume_restarts_it_without_loss(world: World) -> None:
    subscribe(world, "paused-ehr", MUNICIPALITY.her_id)
    world.subscriptions.pause(ctx(OPERATOR), "paused-ehr")
    world.prescribe(MUNICIPALITY, P3, "While paused")
    wait_for(lambda: queued(world, "paused-ehr") == 1, 30, "the event queued while paused")
    consume = lambda ch: ch.basic_consume("vendor.paused-ehr", lambda *_: None)  # noqa: E731
    assert refused(world, "paused-ehr", consume) == 403
    world.subscriptions.resume(ctx(OPERATOR), "paused-ehr")
    (message,) = received(world, "paused-ehr", 1)
    assert message["patient"] == P3


def test_deliveries_are_audited(world: World) -> None:
    subscribe(world, "audited-ehr", MUNICIPALITY.her_id)
    world.prescribe(MUNICIPALITY, P3, "Audited")
    (message,) = received(world, "audited-ehr", 1)
    key = f"{P3['system']}|{P3['value']}"
    rows = accesses(world.system.audit_engine, key, 1000, None)
    (row,) = [r for r in rows if r.call == "VendorDelivery/audited-ehr"]
    assert (row.request_id, row.actor_her_id, row.outcome) == (
        message["event_id"], MUNICIPALITY.her_id, "DELIVERED",
    )  # fmt: skip
    assert (row.basis, row.purpose) == ("RESIDENCE_MUNICIPALITY", "HEALTH_CARE")


def test_a_deleted_subscriptions_queue_and_user_are_gone(world: World) -> None:
    subscribe(world, "deleted-ehr", MUNICIPALITY.her_id)
    world.subscriptions.delete(ctx(OPERATOR), "deleted-ehr")
    with pytest.raises(ProbableAuthenticationError):
        world.vendor("deleted-ehr")
    connection = pika.BlockingConnection(pika.URLParameters(admin_uri(world.broker)))
    with pytest.raises(ChannelClosedByBroker):
        connection.channel().queue_declare("vendor.deleted-ehr", passive=True)
    connection.close()


# --- the admin gRPC service --------------------------------------------------------------------


def admin(world: World) -> streams_pb2_grpc.SubscriptionAdminServiceStub:
    return streams_pb2_grpc.SubscriptionAdminServiceStub(world.system.channel(world.admin_server))


def create_request(subscription: str, **overrides: Any) -> streams_pb2.CreateSubscriptionRequest:
    request = streams_pb2.CreateSubscriptionRequest(
        metadata=meta(f"c-{uuid.uuid4()}"),
        name=subscription,
        vendor_her_id=VENDOR[0],
        subscription_purpose=streams_pb2.SUBSCRIPTION_PURPOSE_CARE_COORDINATION,
        served_her_ids=[MUNICIPALITY.her_id],
    )
    for key, value in overrides.items():
        if isinstance(value, list):
            request.ClearField(key)  # type: ignore[arg-type]
            getattr(request, key).extend(value)
        else:
            setattr(request, key, value)
    return request


def test_an_operator_manages_subscriptions_over_grpc(world: World) -> None:
    stub = admin(world)
    created = stub.CreateSubscription(create_request("grpc-coord"), metadata=auth(OPERATOR))
    world.passwords["grpc-coord"] = created.broker_password
    assert created.subscription.state == streams_pb2.SUBSCRIPTION_STATE_ACTIVE
    assert created.subscription.queue == "vendor.grpc-coord"
    world.vendor("grpc-coord").close()  # the password works
    listed = stub.ListSubscriptions(streams_pb2.ListSubscriptionsRequest(), metadata=auth(OPERATOR))
    assert "grpc-coord" in [s.name for s in listed.subscriptions]
    command = streams_pb2.SubscriptionCommand(
        metadata=create_request("x").metadata, name="grpc-coord"
    )
    paused = stub.PauseSubscription(command, metadata=auth(OPERATOR))
    assert paused.state == streams_pb2.SUBSCRIPTION_STATE_PAUSED


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "Not A Name"}, "name"),
        ({"subscription_purpose": 0}, "subscription_purpose"),
        ({"vendor_her_id": "99999999"}, "vendor_her_id"),
        ({"served_her_ids": [VENDOR[0]]}, "served_her_ids[0]"),
        ({"event_types": ["PatientTeleported"]}, "event_types[0]"),
        ({"sources": ["billing"]}, "sources[0]"),
        ({"contract_version": 4}, "contract_version"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_field(
    world: World, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        admin(world).CreateSubscription(
            create_request("bad-input", **overrides), metadata=auth(OPERATOR)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(f"{field}:")


def test_duplicates_unknowns_and_callers_without_the_operator_role(world: World) -> None:
    stub = admin(world)
    world.passwords["grpc-dup"] = stub.CreateSubscription(
        create_request("grpc-dup"), metadata=auth(OPERATOR)
    ).broker_password
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateSubscription(create_request("grpc-dup"), metadata=auth(OPERATOR))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    unknown = streams_pb2.SubscriptionCommand(
        metadata=create_request("x").metadata, name="no-such-one"
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.PauseSubscription(unknown, metadata=auth(OPERATOR))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    # a vendor whose token wrongly carries the OPERATOR role is no operator (OPERATOR_HER_IDS)
    vendor_as_operator = Actor(VENDOR[0], OrgKind.REGISTRY, roles=frozenset({OPERATOR_ROLE}))
    for caller in (MUNICIPALITY, Actor("112374", OrgKind.REGISTRY), vendor_as_operator):
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListSubscriptions(streams_pb2.ListSubscriptionsRequest(), metadata=auth(caller))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with world.system.audit_engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT actor_her_id, outcome, basis FROM audit_log WHERE call = "
                "'SubscriptionAdminService/ListSubscriptions' OR call = "
                "'SubscriptionAdminService/CreateSubscription'"
            )
        ).all()
    refused = {(r.actor_her_id, r.outcome) for r in rows if r.outcome == "PERMISSION_DENIED"}
    assert {
        (MUNICIPALITY.her_id, "PERMISSION_DENIED"),
        ("112374", "PERMISSION_DENIED"),
        (VENDOR[0], "PERMISSION_DENIED"),
    } <= refused
    assert ("112374", "OK", "OPERATOR") in {(r.actor_her_id, r.outcome, r.basis) for r in rows}


# --- the operator's command line -----------------------------------------------------------------


def cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m services.streams subscriptions ...` as an operator runs it, configured for
    this test's broker vhost and databases."""
    env = {
        **os.environ,
        "AMQP_URI": world.broker.address,
        "AMQP_USER_PREFIX": world.broker.prefix,
        "STREAMS_DATABASE_URL": world.urls["streams"],
        "ACCESS_DATABASE_URL": world.urls["pathway"],
        "AUDIT_DATABASE_URL": world.urls["audit"],
    }
    return subprocess.run(
        [sys.executable, "-m", "services.streams", "subscriptions", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_an_operator_manages_subscriptions_from_the_command_line(world: World) -> None:
    created = cli(
        world, "create", "cli-ehr", "--vendor-her-id", VENDOR[0], "--purpose", "HEALTH_CARE",
        "--served", MUNICIPALITY.her_id, "--event-type", "MedicationPrescribed",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    shown = json.loads(created.stdout)
    assert (shown["name"], shown["state"], shown["queue"]) == (
        "cli-ehr",
        "ACTIVE",
        "vendor.cli-ehr",
    )
    world.passwords["cli-ehr"] = shown["broker_password"]
    world.vendor("cli-ehr").close()  # the password shown once works
    again = cli(
        world, "create", "cli-ehr", "--vendor-her-id", VENDOR[0], "--purpose", "HEALTH_CARE",
        "--served", MUNICIPALITY.her_id,
    )  # fmt: skip
    assert again.returncode != 0 and "exists already" in again.stderr
    listed = [json.loads(line) for line in cli(world, "list").stdout.splitlines()]
    assert "cli-ehr" in [s["name"] for s in listed]
    assert all("broker_password" not in s for s in listed)
    paused = cli(world, "pause", "cli-ehr")
    assert json.loads(paused.stdout)["state"] == "PAUSED"
    deleted = cli(world, "delete", "cli-ehr")
    assert json.loads(deleted.stdout)["state"] == "DELETED"
    with pytest.raises(ProbableAuthenticationError):
        world.vendor("cli-ehr")
    with world.system.audit_engine.connect() as conn:
        calls = [
            row.call
            for row in conn.execute(
                sa.text("SELECT call FROM audit_log WHERE call LIKE 'SubscriptionAdminService/%'")
            )
        ]
    assert {"SubscriptionAdminService/CreateSubscription",
            "SubscriptionAdminService/DeleteSubscription"} <= set(calls)  # fmt: skip
    # the command line acts only as one of carepath's own operating organisations
    vendor = cli(world, "--operator-her-id", VENDOR[0], "list")
    assert vendor.returncode != 0 and "OPERATOR_HER_IDS" in vendor.stderr


def test_a_message_that_cannot_be_trusted_is_dead_lettered_and_delivery_goes_on(
    world: World,
) -> None:
    """A message on medications.events that the medications service did not publish (the
    broker's administrator forges one) goes to carepath.dead-letter with the reason; the next
    real event is still delivered."""
    subscribe(world, "after-forgery", MUNICIPALITY.her_id)
    forged_id = f"forged-{uuid.uuid4()}"
    connection = pika.BlockingConnection(pika.URLParameters(admin_uri(world.broker)))
    channel = connection.channel()
    channel.basic_publish(
        "medications.events", "MedicationPrescribed", b'{"event_id": "x"}',
        pika.BasicProperties(message_id=forged_id, user_id="guest"),
    )  # fmt: skip
    world.prescribe(MUNICIPALITY, P3, "After the forged one")
    (message,) = received(world, "after-forgery", 1)
    assert message["patient"] == P3

    def parked() -> Any:
        """The delivery's dead letter, if there yet (every letter is looked at unacked and
        returned to the queue when the channel closes)."""
        look = connection.channel()
        try:
            while True:
                method, props, _ = look.basic_get("carepath.dead-letter", auto_ack=False)
                if method is None:
                    return None
                headers = props.headers or {}
                if headers.get("x-carepath-consumer") == DELIVERY_QUEUE:
                    return headers
        finally:
            look.close()

    headers = wait_for(parked, 30, "the forged message among the dead letters")
    assert "untrusted sender on medications.events: 'guest'" in headers["x-carepath-reason"]
    connection.close()


def test_each_subscription_receives_patient_admitted_at_its_contract_version(
    world: World,
) -> None:
    """PatientAdmitted version 2 names the home municipality `home_municipality_her_id`: a
    subscription on the current contract (created without naming one) receives version 2, one
    that asked for contract version 1 receives the same event as version 1."""
    stub = admin(world)
    current = stub.CreateSubscription(
        create_request("admitted-current", event_types=["PatientAdmitted"]),
        metadata=auth(OPERATOR),
    )
    older = stub.CreateSubscription(
        create_request("admitted-v1", event_types=["PatientAdmitted"], contract_version=1),
        metadata=auth(OPERATOR),
    )
    assert (current.subscription.contract_version, older.subscription.contract_version) == (
        CURRENT_CONTRACT,
        1,
    )
    world.passwords["admitted-current"] = current.broker_password
    world.passwords["admitted-v1"] = older.broker_password

    world.admit(HOSPITAL, P3)

    (v2,) = received(world, "admitted-current", 1)
    assert (v2["event_type"], v2["schema_version"]) == ("PatientAdmitted", 2)
    assert v2["contract"] == v2["_contract_header"] == "carepath.vendor/3"
    assert v2["data"]["home_municipality_her_id"] == MUNICIPALITY.her_id
    assert "municipality_her_id" not in v2["data"]
    (v1,) = received(world, "admitted-v1", 1)
    assert (v1["event_type"], v1["schema_version"]) == ("PatientAdmitted", 1)
    assert v1["contract"] == v1["_contract_header"] == "carepath.vendor/1"
    assert v1["data"]["municipality_her_id"] == MUNICIPALITY.her_id
    assert "home_municipality_her_id" not in v1["data"]
    assert (v1["event_id"], v1["position"]) == (v2["event_id"], v2["position"])


def test_a_fhir_subscription_gets_r5_event_notifications_carrying_the_minimised_message(
    world: World,
) -> None:
    """The same event to a NATIVE and a FHIR_R5 subscription of the same purpose: the FHIR one
    gets a `subscription-notification` Bundle (validated as R5) numbering the event with its
    stream position, whose focus is the native message byte for byte — minimised alike — and
    the other municipality's patient reaches neither."""
    subscribe(world, "fhir-native", MUNICIPALITY.her_id)
    subscribe(
        world, "fhir-r5", MUNICIPALITY.her_id,
        notification_format=NotificationFormat.FHIR_R5,
    )  # fmt: skip
    world.prescribe(OTHER_MUNICIPALITY, P2, "Ikke Fjordviks pasient")
    world.prescribe(MUNICIPALITY, P3, "Insulinoppstart, fritekst")
    (native,) = received(world, "fhir-native", 1)
    connection = world.vendor("fhir-r5")
    channel = connection.channel()
    got: list[tuple[Any, bytes]] = []
    wait_for(
        lambda: (
            (got.append(m[1:]) if (m := channel.basic_get("vendor.fhir-r5", True))[0] else 0) or got
        ),
        30,
        "the FHIR notification",
    )
    connection.close()
    ((props, body),) = got
    assert props.content_type == "application/fhir+json; fhirVersion=5.0"
    assert props.headers["x-carepath-position"] == native["position"]
    bundle = Bundle.model_validate_json(body)
    assert bundle.type == "subscription-notification"
    status = (bundle.entry or [])[0].resource
    assert isinstance(status, SubscriptionStatus)
    assert (status.type, status.status) == ("event-notification", "active")
    assert status.subscription.reference == "Subscription/fhir-r5"
    (event,) = status.notificationEvent or []
    assert event.eventNumber == status.eventsSinceSubscriptionStart == native["position"]
    carried = native_message(body)
    assert carried["patient"] == P3 and "reason" not in carried["data"]
    expected = {k: v for k, v in native.items() if not k.startswith("_")}
    assert carried == {**expected, "subscription": "fhir-r5"}
    assert queued(world, "fhir-r5") == 0
