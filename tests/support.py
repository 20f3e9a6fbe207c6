"""Helpers shared by the tests: patients, the one builder of a command's metadata (`meta`) and
of its context (`ctx`), waiting for a condition, read-model dumps, and the real processes'
parts built by the composition root (shared/bootstrap.py) as the processes build them: one
service's gRPC server on loopback (`grpc_server`), a store's outbox relay (`outbox_relay`) and
the whole path in threads (`running_system`). Real subprocesses: tests/processes.py."""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar, cast

import grpc
import pika
import pytest
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pika.exceptions import ChannelClosedByBroker
from sqlalchemy.engine import Engine
from stdnum.no import fodselsnummer

from carepath.v1 import (
    admissions_pb2_grpc,
    common_pb2,
    correspondence_pb2_grpc,
    discharges_pb2_grpc,
    medications_pb2_grpc,
    municipal_pb2_grpc,
    referrals_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from services import bootstrap as bootstrap_services
from services.pathway import api as pathway_api
from services.pathway import migrate, projector, readmodel
from services.referrals.application import ReferralsApplication
from services.registry.application import RegistryApplication
from services.registry.importer import import_facts, read_file
from services.streams import stream
from services.streams.provisioning import VendorBroker
from shared import amqp, bootstrap, config, grpc_client
from shared import broker as rabbitmq
from shared.access.enforce import AccessControl
from shared.access.model import Basis, relationships
from shared.actors import Actor, OrgKind
from shared.audit.log import accesses
from shared.auth import TokenVerifier, bearer_metadata
from shared.bootstrap import Api
from shared.broker import Tenant, declare_like, provision_tenant, rabbitmqctl
from shared.config import ClientTLS, ServerTLS
from shared.directory import OrganisationDirectory
from shared.domain import CommandContext
from shared.grpc_server import Server
from shared.ids import FNR_SYSTEM, SYNTHETIC_MONTH_OFFSET
from shared.issuer import Issuer, open_issuer
from shared.outbox import OutboxRelay, PositionStore
from shared.revocation import RevocationList
from shared.sql import engine
from shared.store import CarepathApplication

T = TypeVar("T")

#: The tests' token issuer: an ES256 key pair made once per test session, kept as the local
#: development issuer is (ISSUER_HOME/dev-issuer: key 0600, JWKS), so a viewer process started
#: with CAREPATH_VAR_DIR=ISSUER_HOME and CAREPATH_DEV_ISSUER=1 mints with the same key.
ISSUER_HOME = Path(tempfile.mkdtemp(prefix="carepath-issuer-"))
atexit.register(shutil.rmtree, ISSUER_HOME, ignore_errors=True)
ISSUER: Issuer = open_issuer(ISSUER_HOME / "dev-issuer")
#: The configuration that makes a server trust ISSUER, as production configures HelseID.
TOKEN_ENV = {
    "CAREPATH_TOKEN_ISSUER": ISSUER.iss,
    "CAREPATH_TOKEN_AUDIENCE": ISSUER.aud,
    "CAREPATH_JWKS_FILE": str(ISSUER.jwks_path),
    "CAREPATH_TOKEN_SCOPE": ISSUER.scope,
}


def token_verifier(
    revocations_url: str,
    revocations: RevocationList | None = None,
    directory: OrganisationDirectory | None = None,
    **env: str,
) -> TokenVerifier:
    """A verifier trusting ISSUER, configured as a service process is (`config.token_settings`
    over TOKEN_ENV and `env`), its revocation list at `revocations_url` (or `revocations`, one
    list shared by a test system's servers to spare database connections), its organisation
    directory at `ACCESS_DATABASE_URL` of `env` (or `directory`, shared likewise)."""
    settings = config.token_settings(
        {**TOKEN_ENV, "REVOCATIONS_DATABASE_URL": revocations_url, **env}
    )
    if revocations is None:
        return TokenVerifier.from_settings(settings)
    return TokenVerifier(settings, revocations, directory=directory)


#: The tests' "now", to the second: the clinical time commands are dated from unless a story
#: sets its own clock.
NOW = datetime.now(UTC).replace(microsecond=0)


def fresh_command_id() -> str:
    """A command id no other command of the session has (a client's new command)."""
    return f"cmd-{uuid.uuid4().hex[:12]}"


def meta(
    command_id: str | None = None,
    at: datetime | None = None,
    *,
    hours: float = 0,
    days: float = 0,
) -> common_pb2.CommandMetadata:
    """A command's metadata, as a gRPC client sends it: its `command_id` (a fresh one when
    None) and when it occurred: at `at` (by default NOW) moved by `hours` and `days`
    (negative: before)."""
    occurred_at = Timestamp()
    occurred_at.FromDatetime((at or NOW) + timedelta(hours=hours, days=days))
    return common_pb2.CommandMetadata(
        command_id=command_id or fresh_command_id(), occurred_at=occurred_at
    )


def ctx(
    actor: Actor,
    command_id: str | None = None,
    at: datetime | None = None,
    *,
    hours: float = 0,
    days: float = 0,
    correlation_id: str = "story",
) -> CommandContext:
    """A command's context, as an application receives it: `actor`'s command `command_id` (a
    fresh one when None), occurred at `at` (by default NOW) moved by `hours` and `days`
    (negative: before)."""
    occurred_at = (at or NOW) + timedelta(hours=hours, days=days)
    return CommandContext(command_id or fresh_command_id(), occurred_at, actor, correlation_id)


#: A readiness notice (Melding om utskrivningsklar pasient) that says everything the
#: municipality's duty to pay needs (rules.toml [discharge_payment.conditions.readiness_notice]):
#: the fields of DeclareReadyForDischargeRequest and of the discharges' ReadinessContent.
READINESS_NOTICE: dict[str, str] = {
    "status": "Innleggelsesårsak (pneumoni) behandlet; ingen nye problemstillinger.",
    "functional_level": "Går med rullator; trenger hjelp til personlig stell, som før.",
    "expected_course": "Stabil; videre mobilisering over 2–3 uker.",
    "follow_up_needs": "Hjemmesykepleie morgen og kveld; fastlege kontrollerer CRP om en uke.",
}


def allow_test_data() -> None:
    """Accept the synthetic identifiers `make_fnr` makes, here and in every process started
    from here on (they inherit the environment), as `make run` does: CAREPATH_TEST_DATA=allow,
    applied as a process applies it at its start (shared.bootstrap.test_data_policy). The test
    session (tests/conftest.py) and the benchmarks call it first."""
    os.environ["CAREPATH_TEST_DATA"] = "allow"
    bootstrap.test_data_policy()


def make_fnr(day: int, month: int, year2: int, individual: int, *, synthetic: bool = True) -> str:
    """A valid fødselsnummer born `day`.`month`.`year2` (a D-number when `day` is + 40), with
    the first individual number from `individual` on whose check digits exist (python-stdnum
    computes them). Synthetic, as the national test population's numbers are: month + 80
    (shared/ids.py), never a real person's, accepted where test data is allowed (the tests and
    `make run`: CAREPATH_TEST_DATA=allow). `synthetic=False` gives the classic number of the
    same birth date, only for what predates synthetic numbers (the committed fixture stores)."""
    if not 1 <= month <= 12:
        raise ValueError("month is the calendar month, 1–12 (make_hnr makes an H-number)")
    return _with_check_digits(
        day, month + SYNTHETIC_MONTH_OFFSET if synthetic else month, year2, individual
    )


def not_a_number(day: int, month: int, year2: int, individual: int) -> str:
    """Eleven digits that are no one's number: `make_fnr`'s with the last check digit wrong
    (what a mistyped number looks like)."""
    number = make_fnr(day, month, year2, individual)
    return number[:-1] + str((int(number[-1]) + 1) % 10)


def make_hnr(day: int, month: int, year2: int, individual: int) -> str:
    """A valid H-number (month + 40), as a health institution assigns one to a patient whose
    national number is not known; the national test population has no synthetic H-numbers."""
    if not 1 <= month <= 12:
        raise ValueError("month is the calendar month, 1–12")
    return _with_check_digits(day, month + 40, year2, individual)


def _with_check_digits(day: int, month_digits: int, year2: int, individual: int) -> str:
    for ind in range(individual, 1000):
        nine = f"{day:02d}{month_digits:02d}{year2:02d}{ind:03d}"
        k1 = fodselsnummer.calc_check_digit1(nine)
        if len(k1) == 1:
            k2 = fodselsnummer.calc_check_digit2(nine + k1)
            if len(k2) == 1:
                return nine + k1 + k2
    raise ValueError("no valid number in that range")


def wait_for(condition: Callable[[], T], timeout: float = 30.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def dump_read_model(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every event-derived table, sorted, for byte-for-byte comparisons."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in (readmodel.events, *readmodel.DERIVED):
            rows = conn.execute(sa.select(table)).all()
            out[table.name] = sorted(tuple(r) for r in rows)
    return out


def auth(actor: Actor) -> tuple[tuple[str, str]]:
    """gRPC call metadata with a bearer token for `actor` (signed by the tests' issuer)."""
    return bearer_metadata(ISSUER.mint(actor))


def events_in(app: CarepathApplication) -> int:
    """How many events the application's store holds (to show a refused command added none)."""
    return app.recorder.max_notification_id() or 0


#: Ports handed out by `free_port` in this process (never the same one twice).
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port free now, for a server started later. Taken below Linux's ephemeral
    range (32768–60999, where the kernel picks the local ports of outgoing connections: one of
    those could take a port handed out from there before its server binds it), and never one
    this process handed out before."""
    while True:
        port = random.randrange(20000, 32000)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port


#: The local broker's administrator (Debian's rabbitmq-server: guest, from loopback only).
ADMIN_USER, ADMIN_PASSWORD = "guest", "guest"


def open_tenant(vhost: str) -> Tenant:
    """A RabbitMQ vhost of its own (tests, bench), provisioned from the definitions with
    service users of its own, so a running `make run` or another test session never sees its
    events nor shares its users; the local administrator may look into it (`admin_uri`)."""
    tenant = provision_tenant(vhost)
    subprocess.run(
        [rabbitmqctl(), "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        capture_output=True,
        check=True,
    )
    return tenant


def admin_uri(tenant: Tenant) -> str:
    """The administrator in the tenant's vhost (a test's own look at queues and exchanges)."""
    return config.with_credentials(tenant.address, ADMIN_USER, ADMIN_PASSWORD)


def unique_queue(prefix: str = "test") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def projector_copy(broker: Tenant, queue: str) -> None:
    """Declare `queue` as the definitions declare and bind `pathway.projector` (the
    administrator does: the pathway's user may consume it, not bind it)."""
    connection = amqp.connect(admin_uri(broker), "test")
    declare_like(connection.channel(), projector.QUEUE, queue)
    connection.close()


def projector_queue(label: str) -> str:
    """A name for a test's own copy of the projector's queue (one the pathway's broker user
    may consume: `pathway.projector.<partition>`)."""
    return f"pathway.projector.{label}-{uuid.uuid4().hex[:10]}"


def bind_test_queue(uri: str, exchange: str, queue: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(uri))
    ch = conn.channel()
    ch.exchange_declare(exchange, "topic", durable=True)
    ch.queue_declare(queue, durable=True)
    ch.queue_bind(queue, exchange, "#")
    conn.close()


def drain_queue(uri: str, queue: str, delete: bool = True) -> list[bytes]:
    conn = pika.BlockingConnection(pika.URLParameters(uri))
    ch = conn.channel()
    bodies = []
    while True:
        method, _props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            break
        bodies.append(body)
    if delete:
        ch.queue_delete(queue)
    conn.close()
    return bodies


#: The domain services a test system runs (each its gRPC server and its outbox relay).
DOMAIN_SERVICES = bootstrap_services.DOMAIN_SERVICES

#: The register adapter that records the tests' register facts.
REGISTER_ADAPTER = Actor(her_id="112374", org_kind=OrgKind.REGISTRY)


#: A server of a test listens on a free port of the loopback interface.
LOOPBACK = "127.0.0.1:0"


@contextmanager
def grpc_server(
    name: str,
    api: Api,
    target: Any,
    urls: Mapping[str, str],
    tls: ServerTLS | None = None,
    **token_env: str,
) -> Iterator[Server]:
    """`api`'s gRPC server over `target` (an application, or the read model) on loopback, built
    by the composition root as a `serve` process builds it, writing the audit log as `name`:
    the access facts at `urls["pathway"]`, the audit log at `urls["audit"]`, the revocation
    list at `urls["revocations"]`, tokens of ISSUER (with `token_env` besides)."""
    facts = AccessControl.for_urls(urls["pathway"], urls["audit"], name)
    access = bootstrap.access_control(name, api.resolvers(target), facts)
    tokens = token_verifier(urls["revocations"], None, None, **token_env)
    server = bootstrap.grpc_server(target, api, access, tokens, LOOPBACK, tls)
    try:
        yield server
    finally:
        server.stop(0)
        tokens.close()
        facts.close()


@contextmanager
def outbox_relay(
    app: CarepathApplication, url: str, broker: Tenant, **options: int
) -> Iterator[OutboxRelay]:
    """`app`'s outbox relay, built by the composition root as its `relay` process builds it:
    its position beside the store at `url`, publishing as its service's broker user of
    `broker`; `options` (batch_size) as OutboxRelay takes them."""
    positions = bootstrap.position_store(app.name, url)
    publisher = bootstrap.event_publisher(app.name, broker.uri(app.name))
    try:
        yield bootstrap.outbox_relay(app, positions, publisher, **options)
    finally:
        publisher.close()
        positions.close()


@dataclass
class Harness:
    """The whole path on real parts: each domain service's gRPC server and outbox relay,
    the projector and the pathway gRPC server."""

    apps: dict[str, CarepathApplication]
    servers: dict[str, Server]
    relays: dict[str, OutboxRelay]
    engine: Engine
    pathway_server: Server
    projector: projector.Projector
    access: dict[str, AccessControl]
    #: Each server's token verifier (one per server, as one per process in production).
    tokens: dict[str, TokenVerifier]
    #: The servers' CA (and client certificate) when the system serves TLS; None: plaintext.
    client_tls: ClientTLS | None = None

    @property
    def referrals_app(self) -> ReferralsApplication:
        return cast(ReferralsApplication, self.apps["referrals"])

    @property
    def referrals_server(self) -> Server:
        return self.servers["referrals"]

    def channel(self, server: Server) -> grpc.Channel:
        return grpc_client.channel(f"127.0.0.1:{server.port}", self.client_tls)

    @property
    def audit_engine(self) -> Engine:
        return self.access["pathway"].audit.engine

    def register(
        self,
        patient: dict[str, str],
        municipality: str | None = None,
        gp: Actor | None = None,
        since: date = date(2000, 1, 1),
    ) -> None:
        """Record the patient's residence and fastlege as the register adapter does, and wait
        until the access facts know them."""
        channel = self.channel(self.servers["registry"])
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        pb = common_pb2.PatientIdentifier(**patient)
        creds = auth(REGISTER_ADAPTER)
        tag = uuid.uuid4().hex[:8]
        meta = common_pb2.CommandMetadata(
            command_id=f"register-{tag}", occurred_at=Timestamp(seconds=int(time.time()))
        )
        start = common_pb2.Date(year=since.year, month=since.month, day=since.day)
        if municipality:
            stub.RecordResidence(
                registry_pb2.RecordResidenceRequest(
                    metadata=meta, patient=pb, municipality_her_id=municipality, valid_from=start
                ),
                metadata=creds,
            )
            self.wait_for_relationship(patient, municipality, Basis.RESIDENCE_MUNICIPALITY)
        if gp:
            meta.command_id = f"fastlege-{tag}"
            stub.AssignFastlege(
                registry_pb2.AssignFastlegeRequest(
                    metadata=meta,
                    patient=pb,
                    gp_her_id=gp.her_id,
                    gp_hpr_number=gp.hpr or "9999999",
                    valid_from=start,
                ),
                metadata=creds,
            )
            self.wait_for_relationship(patient, gp.her_id, Basis.FASTLEGE)
        channel.close()

    def audit_rows(self, patient: dict[str, str]) -> list[Any]:
        """The audit log's rows about the patient, newest first."""
        return accesses(self.audit_engine, readmodel.patient_key(patient), 10_000, None)

    def wait_for_relationship(
        self, patient: dict[str, str], her_id: str, basis: Basis, timeout: float = 30.0
    ) -> None:
        key = readmodel.patient_key(patient)
        r = relationships
        query = sa.select(r.c.her_id).where(
            r.c.patient_key == key, r.c.her_id == her_id, r.c.basis == basis.value
        )

        def known() -> bool:
            with self.engine.connect() as conn:
                return conn.execute(query).first() is not None

        wait_for(known, timeout, f"{basis.value} of {her_id} in the access facts")


@contextmanager
def running_system(
    urls: dict[str, str],
    broker: Tenant,
    queue: str,
    server_tls: ServerTLS | None = None,
    client_tls: ClientTLS | None = None,
) -> Iterator[Harness]:
    """Every service on `urls`, each relay and the projector (on its own copy `queue` of the
    projector's queue) connected to the broker as its service's user; gRPC over TLS when
    `server_tls`/`client_tls` are given."""
    projector_copy(broker, queue)
    engine = readmodel.create_engine(urls["pathway"])
    migrate.upgrade(engine)
    apps: dict[str, CarepathApplication] = {}
    servers: dict[str, Server] = {}
    relays: dict[str, OutboxRelay] = {}
    positions: list[PositionStore] = []
    access: dict[str, AccessControl] = {}
    revocations = RevocationList(urls["revocations"])
    directory = OrganisationDirectory(urls["pathway"])
    tokens = {
        name: token_verifier(urls["revocations"], revocations, directory)
        for name in (*DOMAIN_SERVICES, "pathway")
    }
    shared_access = AccessControl.for_urls(urls["pathway"], urls["audit"], "test-system")
    for name, service in DOMAIN_SERVICES.items():
        url = urls[name]
        app = apps[name] = bootstrap.application(service.application, url=url)
        position = bootstrap.position_store(name, url)
        positions.append(position)
        publisher = bootstrap.event_publisher(name, broker.uri(name))
        relays[name] = bootstrap.outbox_relay(app, position, publisher)
        control = access[name] = bootstrap.access_control(
            name, service.api.resolvers(app), shared_access
        )
        servers[name] = bootstrap.grpc_server(
            app, service.api, control, tokens[name], LOOPBACK, server_tls
        )
    proj = projector.Projector(engine, broker.uri("pathway"), queue=queue)
    stop = threading.Event()
    threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in relays.values()]
    threads.append(threading.Thread(target=proj.run, args=(stop,), daemon=True))
    control = access["pathway"] = bootstrap.access_control(
        "pathway", pathway_api.resolvers(engine), shared_access
    )
    pathway_server = bootstrap.grpc_server(
        engine, pathway_api, control, tokens["pathway"], LOOPBACK, server_tls
    )
    for t in threads:
        t.start()
    if not proj.ready.wait(timeout=30):
        raise AssertionError("the projector did not consume its queue within 30 s")
    try:
        yield Harness(
            apps, servers, relays, engine, pathway_server, proj, access, tokens, client_tls
        )
    finally:
        stop.set()
        for server in (*servers.values(), pathway_server):
            server.stop(0)
        shared_access.close()
        revocations.close()
        directory.close()
        for t in threads:
            t.join(timeout=10)
        for position in positions:
            position.close()
        engine.dispose()
        for app in apps.values():
            app.close()


def run_projector(
    engine: Engine, broker: Tenant, queue: str
) -> tuple[projector.Projector, threading.Event]:
    """The projector, as the pathway's broker user, on its own copy of the projector's queue
    (bound as the definitions bind `pathway.projector`)."""
    projector_copy(broker, queue)
    consumer = projector.Projector(engine, broker.uri("pathway"), queue=queue)
    stop = threading.Event()
    threading.Thread(target=consumer.run, args=(stop,), daemon=True).start()
    return consumer, stop


ROOT = Path(__file__).resolve().parents[1]


def consumers(amqp_uri: str, queue: str) -> int:
    """How many consumers the queue has (0 when it does not exist)."""
    conn = amqp.connect(amqp_uri, "test")
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.consumer_count)
    except ChannelClosedByBroker:
        return 0
    finally:
        conn.close()


def purge_queues(amqp_uri: str, queues: list[str]) -> None:
    conn = amqp.connect(amqp_uri, "test")
    ch = conn.channel()
    for queue in queues:
        ch.queue_purge(queue)
    conn.close()


def event_queues(module: str) -> list[str]:
    """The queues of a module's @event_handler entrypoints, named as nameko names them:
    evt-<source>-<event>--<service>.<method>."""
    found = []
    for cls in vars(importlib.import_module(module)).values():
        if not (isinstance(cls, type) and cls.__module__ == module and hasattr(cls, "name")):
            continue
        for method_name, method in vars(cls).items():
            for entrypoint in getattr(method, "nameko_entrypoints", ()):
                if hasattr(entrypoint, "event_type"):
                    found.append(
                        f"evt-{entrypoint.source_service}-{entrypoint.event_type}"
                        f"--{cls.name}.{method_name}"
                    )
    return found


class _Recorder(SimpleSpanProcessor):
    """Keeps the spans that end while a test records (`recorded_spans`), none otherwise."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.active = False
        super().__init__(self.exporter)

    def on_end(self, span: ReadableSpan) -> None:
        if self.active:
            super().on_end(span)


_RECORDER: _Recorder | None = None


@contextmanager
def recorded_spans() -> Iterator[InMemorySpanExporter]:
    """Every span this test process ends inside the block, kept in memory (the SDK's
    exporter, on the process's tracer provider as `shared.tracing.setup` installs it)."""
    global _RECORDER
    if _RECORDER is None:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
        _RECORDER = _Recorder()
        provider.add_span_processor(_RECORDER)
    _RECORDER.exporter.clear()
    _RECORDER.active = True
    try:
        yield _RECORDER.exporter
    finally:
        _RECORDER.active = False
        _RECORDER.exporter.clear()


@dataclass
class ExportedSpan:
    """A span another process exported over OTLP, as the collector received it."""

    service: str
    span: trace_pb2.Span


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver on loopback, where processes started by a test export
    their spans (`OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint`), as to a real collector."""

    def __init__(self) -> None:
        self.spans: list[ExportedSpan] = []
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)  # type: ignore[no-untyped-call]
        self.endpoint = f"http://127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"
        self._server.start()

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            for resource_spans in request.resource_spans:
                names = [
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ]
                for scope in resource_spans.scope_spans:
                    self.spans.extend(ExportedSpan(names[0], s) for s in scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def stop(self) -> None:
        self._server.stop(0)


@contextmanager
def otlp_collector() -> Iterator[Collector]:
    collector = Collector()
    try:
        yield collector
    finally:
        collector.stop()


def demo_module() -> ModuleType:
    """infra/demo.py, the demo `make run` loads (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("carepath_demo", ROOT / "infra" / "demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def demo_clients(system: Harness, demo: ModuleType) -> Any:
    """The demo's gRPC clients, pointed at the harness's servers."""

    def stub(cls: type, name: str) -> object:
        return cls(system.channel(system.servers[name]))

    return demo.Clients(
        referrals=stub(referrals_pb2_grpc.ReferralServiceStub, "referrals"),
        admissions=stub(admissions_pb2_grpc.AdmissionServiceStub, "admissions"),
        medications=stub(medications_pb2_grpc.MedicationServiceStub, "medications"),
        discharges=stub(discharges_pb2_grpc.DischargeServiceStub, "discharges"),
        municipal=stub(municipal_pb2_grpc.MunicipalServiceStub, "municipal"),
        correspondence=stub(correspondence_pb2_grpc.CorrespondenceServiceStub, "correspondence"),
    )


def load_demo(system: Harness, demo: ModuleType) -> int:
    """The demo as `make run` loads it: the synthetic register extract imported into the
    registry (`python -m services.registry import`), then the demo's commands over gRPC.
    Returns how many public clinical events the commands record."""
    registry = cast(RegistryApplication, system.apps["registry"])
    import_facts(registry, read_file(demo.REGISTRY_FILE), REGISTER_ADAPTER)
    system.wait_for_relationship(
        {"system": FNR_SYSTEM, "value": demo.PATIENT},
        demo.COORDINATOR.her_id,
        Basis.RESIDENCE_MUNICIPALITY,
    )
    return int(demo.load(demo_clients(system, demo), ISSUER))


@contextmanager
def streams_server(
    broker: Tenant, urls: dict[str, str], system: Harness
) -> Iterator[tuple[Server, int]]:
    """The streams service's gRPC server (services/bootstrap.py's STREAMS, built as its
    `serve` process builds it), provisioning on this session's vhost with its users' prefix
    (AMQP_URI, AMQP_USER_PREFIX), as a process configured for it does. The broker user of
    every subscription not deleted is deleted afterwards; the queues go with the session's
    vhost (one rabbitmqctl call each rather than VendorBroker.delete's three: they take
    seconds each). Beside it the event stream server (grpc.aio, on a loop of its own, as
    `python -m services.streams stream` composes it; heartbeats every 0.2 s); its port."""
    STREAMS = bootstrap_services.STREAMS
    app = bootstrap.application(STREAMS.application, url=urls["streams"])
    loop = asyncio.new_event_loop()
    looping = threading.Thread(target=loop.run_forever, daemon=True)
    looping.start()
    log_engine = engine(urls["streams"])
    started = asyncio.run_coroutine_threadsafe(
        stream.start(
            app, log_engine, system.access["pathway"].for_service({}), system.tokens["pathway"],
            stream.StreamSettings(heartbeat=0.2, page=50, poll=0.05), "127.0.0.1:0", 2,
        ),
        loop,
    )  # fmt: skip
    events = started.result(30)
    patch = pytest.MonkeyPatch()
    patch.setenv("AMQP_URI", broker.address)
    try:
        with grpc_server(STREAMS.name, STREAMS.api, app, urls) as server:
            yield server, events.server.port
    finally:
        asyncio.run_coroutine_threadsafe(events.stop(0), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        looping.join(10)
        log_engine.dispose()
        vendors = VendorBroker(broker.vhost, broker.prefix)
        for s in app.subscriptions():
            rabbitmq.ctl("delete_user", vendors.user(s.name))
        patch.undo()
        app.close()
