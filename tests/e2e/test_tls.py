"""A referral from command to pathway with TLS at every hop: the hospital and GP systems
call the gRPC servers over mutual TLS, the relay publishes and the projector consumes over
AMQPS, on a throwaway broker and certificate authority this module creates."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast
from uuid import UUID

import grpc
import pika
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    pathway_pb2,
    pathway_pb2_grpc,
    referrals_pb2,
    referrals_pb2_grpc,
)
from services.discharges.application import DischargesApplication
from shared import amqp, grpc_client
from shared.broker import Tenant
from shared.config import ClientTLS
from shared.ids import FNR_SYSTEM
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, STORES
from tests.processes import nameko
from tests.support import Harness, auth, make_fnr, projector_queue, running_system, wait_for
from tests.tls import Authority, make_authority, tls_broker

pytestmark = pytest.mark.broker

FNR = make_fnr(14, 5, 61, 350)
PATIENT = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=FNR)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return make_authority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def tls_tenant(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenant]:
    """The AMQPS broker (its service users), and the AMQP_TLS_* settings every connection to it
    reads."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AMQP_TLS_CA_FILE", str(authority.ca))
        env.setenv("AMQP_TLS_CERT_FILE", str(authority.client_cert))
        env.setenv("AMQP_TLS_KEY_FILE", str(authority.client_key))
        with tls_broker(authority, tmp_path_factory.mktemp("broker")) as tenant:
            env.setenv("AMQP_USER_PREFIX", tenant.prefix)  # its consumers expect its users
            yield tenant


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    stores = tmp_path_factory.mktemp("stores")
    return {name: f"sqlite:///{stores}/{name}.sqlite" for name in STORES}


@pytest.fixture(scope="module")
def tls_system(authority: Authority, tls_tenant: Tenant, urls: dict[str, str]) -> Iterator[Harness]:
    with running_system(
        urls, tls_tenant, projector_queue("tls"), authority.server_tls(), authority.client_tls()
    ) as system:
        system.register(
            {"system": FNR_SYSTEM, "value": FNR}, municipality=MUNICIPALITY.her_id, gp=GP
        )
        yield system


def hours_ago(hours: float) -> Timestamp:
    moment = Timestamp()
    moment.FromDatetime(datetime.now(UTC) - timedelta(hours=hours))
    return moment


def health(channel: grpc.Channel) -> int:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return int(reply.status)


def test_a_referral_goes_from_command_to_pathway_over_tls_grpc_and_amqps(
    tls_system: Harness,
) -> None:
    occurred = hours_ago(1)
    referrals = referrals_pb2_grpc.ReferralServiceStub(
        tls_system.channel(tls_system.referrals_server)
    )
    sent = referrals.SendReferral(
        referrals_pb2.SendReferralRequest(
            metadata=common_pb2.CommandMetadata(command_id="tls-send", occurred_at=occurred),
            patient=PATIENT,
            receiver_her_id=HOSPITAL.her_id,
            reason="Tungpust og brystsmerter ved anstrengelse.",
            priority=referrals_pb2.REFERRAL_PRIORITY_ROUTINE,
        ),
        metadata=auth(GP),
    )
    pathway = pathway_pb2_grpc.PathwayServiceStub(tls_system.channel(tls_system.pathway_server))

    def shown() -> pathway_pb2.Pathway | None:
        try:
            reply = pathway.GetPathway(
                pathway_pb2.GetPathwayRequest(
                    patient=PATIENT, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
                ),
                metadata=auth(GP),
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return reply if reply.timeline else None

    reply = wait_for(shown, what="the referral in the pathway, through the AMQPS broker")
    assert [(e.event_type, e.aggregate_id) for e in reply.timeline] == [
        ("ReferralSent", sent.referral_id)
    ]


def test_a_nameko_reaction_works_over_amqps_too(
    tls_system: Harness, tls_tenant: Tenant, urls: dict[str, str]
) -> None:
    """The discharges service learns of an admission from its nameko reaction, which
    connects to the broker over AMQPS with the same AMQP_TLS_* files as every process."""
    admissions = admissions_pb2_grpc.AdmissionServiceStub(
        tls_system.channel(tls_system.servers["admissions"])
    )
    discharges = cast(DischargesApplication, tls_system.apps["discharges"])
    with nameko("services.discharges.reactions", tls_tenant, urls):
        stay = admissions.AdmitPatient(
            admissions_pb2.AdmitPatientRequest(
                metadata=common_pb2.CommandMetadata(
                    command_id="tls-admit", occurred_at=hours_ago(2)
                ),
                patient=PATIENT,
                municipality_her_id=MUNICIPALITY.her_id,
                ward="Medisinsk sengepost",
                admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
            ),
            metadata=auth(HOSPITAL),
        )
        known = wait_for(
            lambda: discharges.stays.get(UUID(stay.stay_id)), what="the stay in discharges"
        )
    assert known.hospital_her_id == HOSPITAL.her_id


def test_a_system_with_the_ca_and_its_client_certificate_is_served(
    tls_system: Harness, authority: Authority
) -> None:
    address = f"localhost:{tls_system.referrals_server.port}"
    with grpc_client.channel(address, authority.client_tls()) as channel:
        assert health(channel) == health_pb2.HealthCheckResponse.SERVING


def test_the_viewers_channel_takes_tls_from_the_environment(
    tls_system: Harness, authority: Authority, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The viewer opens its asyncio channels with `grpc_client.aio_channel(address)`: the
    GRPC_TLS_* settings alone make them mutual TLS."""
    monkeypatch.setenv("GRPC_TLS_CA_FILE", str(authority.ca))
    monkeypatch.setenv("GRPC_TLS_CLIENT_CERT_FILE", str(authority.client_cert))
    monkeypatch.setenv("GRPC_TLS_CLIENT_KEY_FILE", str(authority.client_key))

    async def check() -> int:
        address = f"localhost:{tls_system.pathway_server.port}"
        async with grpc_client.aio_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            return int(reply.status)

    assert asyncio.run(check()) == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    "client",
    ["plaintext", "no client certificate", "another CA's certificate"],
)
def test_a_server_with_mutual_tls_refuses_a_client_it_cannot_verify(
    tls_system: Harness, authority: Authority, tmp_path: Path, client: str
) -> None:
    address = f"localhost:{tls_system.pathway_server.port}"
    if client == "plaintext":
        channel = grpc.insecure_channel(address)
    elif client == "no client certificate":
        channel = grpc_client.channel(address, authority.client_tls(with_certificate=False))
    else:
        stranger = make_authority(tmp_path / "stranger")
        channel = grpc_client.channel(
            address, ClientTLS(ca=authority.ca, cert=stranger.client_cert, key=stranger.client_key)
        )
    with channel, pytest.raises(grpc.RpcError) as refused:
        health(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_that_does_not_trust_the_servers_ca_does_not_connect(
    tls_system: Harness, tmp_path: Path
) -> None:
    other = make_authority(tmp_path / "other")
    address = f"localhost:{tls_system.pathway_server.port}"
    with (
        grpc_client.channel(address, other.client_tls()) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        health(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_broker_refuses_a_connection_without_a_client_certificate(
    tls_tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AMQP_TLS_CERT_FILE")
    monkeypatch.delenv("AMQP_TLS_KEY_FILE")
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        amqp.connect(tls_tenant.uri("referrals"), "no-certificate")


def test_a_broker_certificate_from_an_unknown_ca_is_not_trusted(
    tls_tenant: Tenant, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AMQP_TLS_CA_FILE", str(make_authority(tmp_path / "other").ca))
    with pytest.raises(ssl.SSLCertVerificationError):
        amqp.connect(tls_tenant.uri("referrals"), "wrong-ca")
