"""Metrics and health of the real processes (shared/ops.py): a gRPC server, its relay, the
projector and a nameko reaction process, each started as production starts it with OPS_PORT.

The series move as events flow; /readyz answers 503 while the database or the broker is down
and 200 when it is back, the gRPC health follows, and `python -m shared.ops probe` exits
accordingly. The database is taken away by refusing connections to this test's own database
and ending its sessions; the broker is a throwaway node of the test's own, stopped and
started again (the machine's broker is never touched)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import grpc
import psycopg
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from carepath.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from shared import amqp
from shared.broker import Tenant
from shared.ids import FNR_SYSTEM
from tests.processes import Command, launched
from tests.support import (
    REGISTER_ADAPTER,
    ROOT,
    TOKEN_ENV,
    admin_uri,
    auth,
    drain_queue,
    event_queues,
    free_port,
    make_fnr,
    projector_copy,
    projector_queue,
    purge_queues,
    wait_for,
)
from tests.throwaway import RabbitNode

REACTIONS = "services.admissions.reactions"


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def samples(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The scrape of the process on `port`: (name, labels) → value."""
    status, text = get(port, "/metrics")
    assert status == 200, f"/metrics on {port} answered {status}"
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(port: int, name: str, **labels: str) -> float:
    """The sum of the series `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples(port).items() if n == name and wanted <= ls)


def ready(port: int) -> bool:
    return get(port, "/readyz")[0] == 200


def not_ready(port: int) -> bool:
    return get(port, "/readyz")[0] == 503


def probe(port: int) -> int:
    return subprocess.run(
        [sys.executable, "-m", "shared.ops", "probe", "--port", str(port)],
        cwd=ROOT,
        capture_output=True,
        check=False,
    ).returncode


def health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="carepath.v1.RegistryService"), timeout=5
        )
    return int(reply.status)


def environment(broker: Tenant, urls: dict[str, str], service: str) -> dict[str, str]:
    return {
        **os.environ,
        **TOKEN_ENV,
        **broker.env(service),
        "PSYCOPG_WAIT_FUNC": "wait_select",
        "PYTHONWARNINGS": "ignore",
        "REVOCATIONS_DATABASE_URL": urls["revocations"],
        "OPS_CHECK_INTERVAL_SECONDS": "0.2",
        **{f"{name.upper()}_DATABASE_URL": url for name, url in urls.items()},
    }


@contextmanager
def started_system(
    broker: Tenant, urls: dict[str, str], logs: Path, with_server: bool = True
) -> Iterator[dict[str, int]]:
    """The projector (on its own copy of the queue), the registry's relay, the admissions
    reactions and (`with_server`) the registry's and the pathway's gRPC servers and the viewer,
    each with an OPS_PORT of its own; yields the ports (`grpc`: the registry's gRPC port) once
    every one is ready."""
    queue = projector_queue("ops")
    projector_copy(broker, queue)
    purge_queues(admin_uri(broker), event_queues(REACTIONS))
    names = ("projector", "relay", "server", "reactions", "grpc", "pathway", "pathway-grpc")
    ports = {name: free_port() for name in (*names, "viewer", "viewer-http")}
    with ExitStack() as stack:

        def start(name: str, args: list[str], service: str, **extra: str) -> None:
            env = {**environment(broker, urls, service), "OPS_PORT": str(ports[name]), **extra}
            command = Command(name, [sys.executable, "-m", *args], {})
            stack.enter_context(launched([command], env, logs))

        start("projector", ["services.pathway", "project"], "pathway", PATHWAY_QUEUE=queue)
        wait_for(lambda: ready(ports["projector"]), 90, "the projector ready")
        start("relay", ["services.registry", "relay"], "registry")
        start("reactions", ["shared.run_reactions", REACTIONS], "admissions")
        servers: list[str] = []
        if with_server:  # the registry's and the pathway's servers, and the viewer of both
            registry, pathway = (f"127.0.0.1:{ports[n]}" for n in ("grpc", "pathway-grpc"))
            start(
                "server", ["services.registry", "serve"], "registry", REGISTRY_GRPC_ADDRESS=registry
            )
            start("pathway", ["services.pathway", "serve"], "pathway", PATHWAY_GRPC_ADDRESS=pathway)
            start(
                "viewer",
                ["services.viewer"],
                "pathway",
                PATHWAY_GRPC_ADDRESS=pathway,
                REGISTRY_GRPC_ADDRESS=registry,
                VIEWER_HTTP_ADDRESS=f"127.0.0.1:{ports['viewer-http']}",
            )
            servers = ["server", "pathway", "viewer"]
        for name in ("relay", "reactions", *servers):
            wait_for(lambda name=name: ready(ports[name]), 90, f"the {name} ready")
        yield ports
        stack.close()
    conn = amqp.connect(admin_uri(broker), "test")
    conn.channel().queue_delete(queue)
    conn.close()


def record_residence(address: str, n: int, tag: str) -> None:
    """n residences recorded by the register adapter (OK), and one refused for a bad field."""
    with grpc.insecure_channel(address) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        for i in range(n + 1):
            patient = common_pb2.PatientIdentifier(
                system=FNR_SYSTEM, value=make_fnr(1 + i, 3, 71, 100)
            )
            meta = common_pb2.CommandMetadata(
                command_id=f"ops-{tag}-{i}", occurred_at=Timestamp(seconds=int(time.time()))
            )
            request = registry_pb2.RecordResidenceRequest(
                metadata=meta,
                patient=patient,
                municipality_her_id="4201" if i < n else "not a HER-id",
                valid_from=common_pb2.Date(year=2020, month=1, day=1),
            )
            if i < n:
                stub.RecordResidence(request, metadata=auth(REGISTER_ADAPTER), timeout=30)
                continue
            try:
                stub.RecordResidence(request, metadata=auth(REGISTER_ADAPTER), timeout=30)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc
            else:
                raise AssertionError("a residence with a bad HER-id was accepted")


def set_connections(admin_url: str, database: str, allowed: bool) -> None:
    """Let this test's own database take connections or not; refusing also ends its sessions
    (only this database's: no one else's)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )


def test_series_move_and_readiness_follows_the_database(
    broker: Tenant, postgres_url: str, postgres_admin_url: str, tmp_path: Path
) -> None:
    urls = {name: postgres_url for name in ("registry", "admissions", "pathway", "audit")}
    urls["revocations"] = postgres_url
    with started_system(broker, urls, tmp_path) as ports:
        address = f"127.0.0.1:{ports['grpc']}"
        assert health(address) == health_pb2.HealthCheckResponse.SERVING
        assert probe(ports["server"]) == 0
        for name in ("projector", "relay", "server", "reactions", "pathway", "viewer"):
            assert get(ports[name], "/healthz")[0] == 200, name
            assert value(ports[name], "carepath_ready") == 1, name

        record_residence(address, 5, "a")
        server, relay, projector = ports["server"], ports["relay"], ports["projector"]
        rpc = "carepath_rpc_duration_seconds_count"
        assert value(server, rpc, method="RecordResidence", status="OK") == 5
        assert value(server, rpc, method="RecordResidence", status="INVALID_ARGUMENT") == 1
        assert value(server, "carepath_commands_stored_total", service="registry") == 5
        wait_for(
            lambda: value(relay, "carepath_relay_published_events_total", service="registry") >= 5,
            what="the relay publishing the residences",
        )
        wait_for(
            lambda: value(relay, "carepath_relay_backlog_events", service="registry") == 0,
            what="the relay's backlog back to 0",
        )
        assert value(relay, "carepath_relay_batch_size_count", service="registry") >= 1
        wait_for(
            lambda: value(projector, "carepath_projector_events_total") >= 5,
            what="the projector projecting them",
        )
        assert value(projector, "carepath_projector_batch_size_sum") >= 5
        wait_for(
            lambda: value(projector, "carepath_projector_lag_events") == 0,
            what="no projector lag",
        )
        assert 0 <= value(projector, "carepath_projector_lag_seconds") < 3600
        # The dead-letter depth is read from the broker by the projector and the reactions.
        for name in ("projector", "reactions"):
            assert (
                "carepath_dead_letter_messages",
                frozenset({("queue", amqp.DEAD_LETTER_QUEUE)}),
            ) in samples(ports[name])

        # A PatientDischarged without its sender's user_id reaches the admissions reaction and
        # the projector, and each dead-letters it: counted, and the dead-letter depth is 2.
        admin = admin_uri(broker)
        drain_queue(admin, amqp.DEAD_LETTER_QUEUE, delete=False)
        conn = amqp.connect(admin, "test")
        conn.channel().basic_publish("discharges.events", "PatientDischarged", b"{}")
        conn.close()
        wait_for(
            lambda: (
                value(
                    ports["reactions"], "carepath_reaction_outcomes_total", outcome="dead_lettered"
                )
                == 1
            ),
            what="the reaction counting the forged event as dead-lettered",
        )
        wait_for(
            lambda: value(projector, "carepath_projector_dead_lettered_total") == 1,
            what="the projector counting the forged event as dead-lettered",
        )
        for name in ("projector", "reactions"):
            wait_for(
                lambda name=name: (
                    value(
                        ports[name], "carepath_dead_letter_messages", queue=amqp.DEAD_LETTER_QUEUE
                    )
                    == 2
                ),
                what=f"the {name} seeing both dead letters",
            )
        drain_queue(admin, amqp.DEAD_LETTER_QUEUE, delete=False)

        database = postgres_url.rsplit("/", 1)[1]
        set_connections(postgres_admin_url, database, allowed=False)
        try:
            for name in ("projector", "relay", "server", "reactions", "pathway", "viewer"):
                wait_for(lambda name=name: not_ready(ports[name]), 30, f"the {name} not ready")
            assert probe(server) == 1
            wait_for(
                lambda: health(address) == health_pb2.HealthCheckResponse.NOT_SERVING,
                what="the server NOT_SERVING",
            )
            assert "read model" in get(projector, "/readyz")[1]
            assert get(server, "/healthz")[0] == 200  # alive, only not ready
        finally:
            set_connections(postgres_admin_url, database, allowed=True)
        for name in ("projector", "relay", "server", "reactions", "pathway", "viewer"):
            wait_for(lambda name=name: ready(ports[name]), 30, f"the {name} ready again")
        wait_for(
            lambda: health(address) == health_pb2.HealthCheckResponse.SERVING,
            what="the server SERVING again",
        )
        assert probe(server) == 0


def test_readiness_follows_the_broker(tmp_path: Path) -> None:
    """Relay, projector and reactions on a broker node of the test's own: not ready while
    it is stopped, ready again once it is back (each reconnects by itself)."""
    urls = {
        name: f"sqlite:///{tmp_path}/{name}.sqlite"
        for name in ("registry", "admissions", "pathway", "audit", "revocations")
    }
    node = RabbitNode(tmp_path / "rabbitmq", "carepath-ops")
    node.start(timeout=90)
    try:
        with started_system(node.tenant, urls, tmp_path, with_server=False) as ports:
            node.stop()
            try:
                for name in ("projector", "relay", "reactions"):
                    wait_for(lambda name=name: not_ready(ports[name]), 60, f"{name} not ready")
                assert probe(ports["relay"]) == 1
                assert "broker" in get(ports["relay"], "/readyz")[1]
                assert get(ports["reactions"], "/healthz")[0] == 200  # eventlet: alive
            finally:
                node.start(timeout=90)
            for name in ("projector", "relay", "reactions"):
                wait_for(lambda name=name: ready(ports[name]), 90, f"{name} ready again")
            assert probe(ports["relay"]) == 0
    finally:
        node.stop()


def test_a_broker_node_whose_port_was_taken_meanwhile_starts_on_a_fresh_one(
    tmp_path: Path,
) -> None:
    """The throwaway node's port is free when picked, not necessarily when the node binds it
    (another test, another helper's process): its first start then fails with
    could_not_start_listener, and it is started again on fresh ports instead of failing the
    test that needed a broker."""
    node = RabbitNode(tmp_path / "rabbitmq", "carepath-ops")
    taken = node.port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        node.start(timeout=90)
        try:
            assert node.port != taken
            assert f":{node.port}/" in node.tenant.address
            amqp.connect(node.admin_uri, "node-probe").close()
            said = (tmp_path / "rabbitmq" / "server.out").read_text(errors="replace")
            assert "could_not_start_listener" in said or "eaddrinuse" in said
        finally:
            node.stop()
