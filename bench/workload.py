"""End-to-end benchmark: concurrent gRPC clients send commands; measure until every one is
visible in the pathway read model, and, in the same run, the raw limits of the slowest legs
(bare eventsourcing `Application.save` on the same backend; bare pika publish with batched
confirms and consume with prefetch + multiple acks).

Workloads: `referrals` (SendReferral only) and `mixed` (a quarter each of SendReferral,
AdmitPatient, PrescribeMedication and DeclareReadyForDischarge, over all four domain services);
`history` (bench/history.py): ChangeDose on one patient's list of 30, 2,000 and 10,000 events,
with and without snapshots.
A readiness needs a stay the discharges service knows (its own view, kept by the nameko
`discharges_stays` process from the admissions events), so the mixed workload admits those
stays before the clock starts and waits until discharges knows every one of them.

Every call passes the access policy and is put on the audit log, as in production: before the
clock starts the patients are imported into the registry (`python -m services.registry import`,
the GP office as their fastlege, municipality 4201 as their home) and the bench waits until the
policy's facts know them all.

    make bench                                   # mixed, SQLite, 3000 commands, 8 clients
    make bench BENCH_ARGS="--workload referrals --backend postgres --commands 4000"

The system runs as real processes (as `make run` starts them) in a throw-away directory and a
dedicated RabbitMQ vhost when rabbitmqctl is available.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pika
import psycopg
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    discharges_pb2,
    discharges_pb2_grpc,
    medications_pb2,
    medications_pb2_grpc,
    referrals_pb2,
    referrals_pb2_grpc,
)
from services.pathway import readmodel
from shared import grpc_client
from shared.actors import Actor, OrgKind
from shared.auth import bearer_metadata
from shared.broker import Tenant
from shared.config import StoreSettings
from shared.domain import CarepathAggregate
from shared.ids import FNR_SYSTEM
from shared.issuer import Issuer
from shared.store import CarepathApplication
from tests.processes import Command, launched
from tests.support import (
    admin_uri,
    allow_test_data,
    free_port,
    make_fnr,
    open_tenant,
    projector_copy,
    projector_queue,
)

#: The benchmark's own issuer: a key pair made per run, trusted through its JWKS file.
ISSUER = Issuer.generate("carepath-bench", "carepath")
GP = Actor(her_id="8134021", org_kind=OrgKind.GP, hpr="9144900")
HOSPITAL = Actor(her_id="59", org_kind=OrgKind.HOSPITAL, hpr="4210953")
MUNICIPALITY = "4201"
#: The domain services the workloads use (each runs its gRPC server and its relay); the
#: registry brings in the register facts the access policy decides on.
SERVICES = ("referrals", "admissions", "discharges", "medications", "registry")
#: Stores beside the services': the read model (and access facts), the audit log, raw saves.
STORES = (*SERVICES, "pathway", "audit", "raw")
VHOST = "carepath-bench"


def patients(n: int) -> list[str]:
    """n distinct synthetic fødselsnumre (born 1980)."""
    found: list[str] = []
    for day, month, individual in itertools.product(range(1, 29), range(1, 13), range(0, 500, 10)):
        number = make_fnr(day, month, 80, individual)
        if number not in found[-1:]:
            found.append(number)
        if len(found) == n:
            return found
    raise ValueError(f"cannot make {n} distinct numbers")


@contextmanager
def broker() -> Iterator[Tenant]:
    """A vhost of the run's own, provisioned from the definitions with its own service users
    (as a test session's), deleted afterwards."""
    tenant = open_tenant(f"{VHOST}-{uuid.uuid4().hex[:8]}")
    try:
        yield tenant
    finally:
        tenant.close()


@contextmanager
def database(
    backend: str, workdir: Path, admin: str | None = None, stores: tuple[str, ...] = STORES
) -> Iterator[dict[str, str]]:
    """A database per store: SQLite files in `workdir`, or PostgreSQL databases of the run's
    own on the server of `admin` (by default the machine's), dropped afterwards."""
    if backend == "sqlite":
        yield {name: f"sqlite:///{workdir}/{name}.sqlite" for name in stores}
        return
    admin = admin or os.environ.get(
        "CAREPATH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    names = {k: f"carepath_bench_{k}_{uuid.uuid4().hex[:8]}" for k in stores}
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield {k: f"{base}/{v}" for k, v in names.items()}
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def system_env(urls: dict[str, str], tenant: Tenant, workdir: Path) -> dict[str, str]:
    """The environment every process of the system runs in (the broker's address and user
    prefix, every store, every gRPC address on a free port, the run's token issuer); each
    process adds its own service's broker password (`process_env`)."""
    return {
        **os.environ,
        **{f"{name.upper()}_DATABASE_URL": urls[name] for name in (*SERVICES, "pathway", "audit")},
        **{f"{name.upper()}_GRPC_ADDRESS": f"127.0.0.1:{free_port()}" for name in SERVICES},
        "AMQP_URI": tenant.address,
        "AMQP_USER_PREFIX": tenant.prefix,
        "PATHWAY_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
        "CAREPATH_TOKEN_ISSUER": ISSUER.iss,
        "CAREPATH_TOKEN_AUDIENCE": ISSUER.aud,
        "CAREPATH_JWKS_FILE": str(ISSUER.write_jwks(workdir / "jwks.json")),
        "CAREPATH_VAR_DIR": str(workdir),
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    }


def addresses_of(env: dict[str, str]) -> dict[str, str]:
    return {name: env[f"{name.upper()}_GRPC_ADDRESS"] for name in SERVICES}


def processes(env: dict[str, str], tenant: Tenant) -> dict[str, tuple[list[str], dict[str, str]]]:
    """The long-running processes of the system, by name: command and environment (each
    with its own service's broker password only)."""
    py = sys.executable

    def as_user(service: str, **extra: str) -> dict[str, str]:
        return {**env, "AMQP_PASSWORD": tenant.passwords[service], **extra}

    found = {
        "pathway-project": ([py, "-m", "services.pathway", "project"], as_user("pathway")),
        "discharges-stays": (
            [py, "-m", "shared.run_reactions", "services.discharges.reactions"],
            as_user("discharges", PYTHONWARNINGS="ignore", PSYCOPG_WAIT_FUNC="wait_select"),
        ),
    }
    for name in SERVICES:
        for process in ("serve", "relay"):
            found[f"{name}-{process}"] = ([py, "-m", f"services.{name}", process], as_user(name))
    return found


def migrate(env: dict[str, str]) -> None:
    """Every store's schema (`python -m services migrate`), before the processes start."""
    subprocess.run([sys.executable, "-m", "services", "migrate"], env=env, check=True)


@contextmanager
def system(
    urls: dict[str, str], tenant: Tenant, workdir: Path
) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """Every service of the workload as real processes; yields their gRPC addresses and the
    environment they run in (for one-off commands against the same stores)."""
    env = {**system_env(urls, tenant, workdir), "PATHWAY_QUEUE": projector_queue("bench")}
    projector_copy(tenant, env["PATHWAY_QUEUE"])
    migrate(env)
    commands = [Command(name, argv, penv) for name, (argv, penv) in processes(env, tenant).items()]
    addresses = addresses_of(env)
    try:
        with launched(commands, {}) as procs:
            for address in addresses.values():
                grpc.channel_ready_future(grpc_client.channel(address)).result(timeout=120)
            time.sleep(1)
            failed = [p.command.name for p in procs if not p.alive()]
            if failed:
                raise SystemExit(f"bench: a process of the system exited: {failed}")
            yield addresses, env
    finally:
        conn = pika.BlockingConnection(pika.URLParameters(admin_uri(tenant)))
        conn.channel().queue_delete(env["PATHWAY_QUEUE"])
        conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Workload:
    """Builds the i-th command of a workload and sends it; returns the event id that shows the
    command's result has reached the pathway read model."""

    def __init__(self, kind: str, addresses: dict[str, str], n: int) -> None:
        self.kind = kind
        self.numbers = patients(n)
        self.run = uuid.uuid4().hex[:6]
        now = Timestamp()
        now.FromDatetime(datetime.now(UTC))
        self.now = now
        self.gp = bearer_metadata(ISSUER.mint(GP))
        self.hospital = bearer_metadata(ISSUER.mint(HOSPITAL))
        self.addresses = addresses
        self.stays: dict[int, str] = {}

    def stubs(self) -> dict[str, Any]:
        return {
            "referrals": referrals_pb2_grpc.ReferralServiceStub(
                grpc_client.channel(self.addresses["referrals"])
            ),
            "admissions": admissions_pb2_grpc.AdmissionServiceStub(
                grpc_client.channel(self.addresses["admissions"])
            ),
            "medications": medications_pb2_grpc.MedicationServiceStub(
                grpc_client.channel(self.addresses["medications"])
            ),
            "discharges": discharges_pb2_grpc.DischargeServiceStub(
                grpc_client.channel(self.addresses["discharges"])
            ),
        }

    def kind_of(self, i: int) -> int:
        return 0 if self.kind == "referrals" else i % 4

    def admit(self, stubs: dict[str, Any], i: int, command_id: str) -> admissions_pb2.Stay:
        return stubs["admissions"].AdmitPatient(
            admissions_pb2.AdmitPatientRequest(
                metadata=common_pb2.CommandMetadata(command_id=command_id, occurred_at=self.now),
                patient=common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=self.numbers[i]),
                ward="Medisinsk sengepost 3",
                admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
                municipality_her_id=MUNICIPALITY,
            ),
            metadata=self.hospital,
            timeout=30,
        )

    def register(self, urls: dict[str, str], env: dict[str, str], workdir: Path) -> None:
        """Import the patients into the registry (the GP office their fastlege, 4201 their
        home; one file, one bulk import) and wait until the access facts know them all."""
        extract = {
            "patients": [
                {
                    "patient": {"system": FNR_SYSTEM, "value": value},
                    "residence": [
                        {"municipality_her_id": MUNICIPALITY, "valid_from": "1980-01-01"}
                    ],
                    "fastlege": [
                        {
                            "gp_her_id": GP.her_id,
                            "gp_hpr_number": GP.hpr,
                            "valid_from": "2000-01-01",
                        }
                    ],
                }
                for value in self.numbers
            ]
        }
        path = workdir / "bench-registry.json"
        path.write_text(json.dumps(extract))
        command = [sys.executable, "-m", "services.registry", "import", str(path)]
        subprocess.run(command, env=env, check=True)
        facts = sa.table("access_relationships", sa.column("basis"))
        engine = readmodel.create_engine(urls["pathway"])
        count_fastlege = (
            sa.select(sa.func.count()).select_from(facts).where(facts.c.basis == "FASTLEGE")
        )
        deadline = time.monotonic() + 300
        try:
            while True:
                with engine.connect() as conn:
                    count = conn.execute(count_fastlege).scalar_one()
                if count >= len(self.numbers):
                    return
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench: the policy knows {count} of {len(self.numbers)}")
                time.sleep(0.2)
        finally:
            engine.dispose()

    def prepare(self, urls: dict[str, str], n: int, clients: int) -> None:
        """Admit the stays the readiness commands will name (untimed) and wait until the
        discharges service's own view knows all of them."""
        wanted = [i for i in range(n) if self.kind_of(i) == 3]
        if not wanted:
            return

        def admit_all(worker: int) -> None:
            stubs = self.stubs()
            for i in wanted[worker::clients]:
                self.stays[i] = self.admit(stubs, i, f"bench-{self.run}-stay-{i}").stay_id

        threads = [threading.Thread(target=admit_all, args=(w,)) for w in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if len(self.stays) != len(wanted):
            raise SystemExit("bench: admitting the stays for the readiness commands failed")
        known = sa.table("discharge_known_stays", sa.column("stay_id"))
        engine = sa.create_engine(StoreSettings(urls["discharges"]).sqlalchemy_url())
        deadline = time.monotonic() + 120
        try:
            while True:
                with engine.connect() as conn:
                    count = conn.execute(sa.select(sa.func.count()).select_from(known)).scalar_one()
                if count >= len(wanted):
                    return
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench: discharges knows {count} of {len(wanted)} stays")
                time.sleep(0.1)
        finally:
            engine.dispose()

    def send(self, stubs: dict[str, Any], i: int) -> str:
        meta = common_pb2.CommandMetadata(command_id=f"bench-{self.run}-{i}", occurred_at=self.now)
        patient = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=self.numbers[i])
        which = self.kind_of(i)
        if which == 0:
            referral = stubs["referrals"].SendReferral(
                referrals_pb2.SendReferralRequest(
                    metadata=meta,
                    patient=patient,
                    receiver_her_id=HOSPITAL.her_id,
                    reason="Benchmark",
                    priority=referrals_pb2.REFERRAL_PRIORITY_ROUTINE,
                ),
                metadata=self.gp,
                timeout=30,
            )
            return f"{referral.referral_id}:{referral.version}"
        if which == 1:
            stay = self.admit(stubs, i, meta.command_id)
            return f"{stay.stay_id}:{stay.version}"
        if which == 3:
            discharge = stubs["discharges"].DeclareReadyForDischarge(
                discharges_pb2.DeclareReadyForDischargeRequest(
                    metadata=meta, stay_id=self.stays[i]
                ),
                metadata=self.hospital,
                timeout=30,
            )
            return f"{discharge.discharge_id}:{discharge.version}"
        listed = stubs["medications"].PrescribeMedication(
            medications_pb2.PrescribeMedicationRequest(
                metadata=meta,
                patient=patient,
                medication=medications_pb2.Medication(atc_code="C09AA05", name="Ramipril"),
                dose="5 mg x 1",
            ),
            metadata=self.gp,
            timeout=30,
        )
        return f"{listed.list_id}:{listed.version}"


def run_commands(
    workload: Workload, urls: dict[str, str], n: int, clients: int
) -> dict[str, float]:
    errors: list[BaseException] = []
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    lock = threading.Lock()

    def client(worker: int) -> None:
        stubs = workload.stubs()
        for i in range(worker, n, clients):
            t0 = time.perf_counter()
            try:
                event_id = workload.send(stubs, i)
            except grpc.RpcError as exc:
                errors.append(exc)
                return
            t1 = time.perf_counter()
            with lock:
                latencies.append(t1 - t0)
                sent_at[event_id] = t1

    engine = readmodel.create_engine(urls["pathway"])
    visible_at: dict[str, float] = {}
    done = threading.Event()

    def watch() -> None:
        """Poll the read model for the events sent but not yet seen (a small set while the
        system keeps up), so watching costs little beside the system under test."""
        column = readmodel.events.c.event_id
        while not done.is_set():
            with lock:
                pending = [e for e in sent_at if e not in visible_at]
            found: list[str] = []
            with engine.connect() as conn:
                for i in range(0, len(pending), 500):
                    chunk = pending[i : i + 500]
                    found += conn.execute(sa.select(column).where(column.in_(chunk))).scalars()
            t = time.perf_counter()
            for event_id in found:
                visible_at.setdefault(event_id, t)
            if len(visible_at) >= n:
                done.set()
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    start = time.perf_counter()
    watcher.start()
    threads = [threading.Thread(target=client, args=(w,)) for w in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    commands_done = time.perf_counter()
    if errors:
        done.set()
        watcher.join()
        raise SystemExit(f"bench: {len(errors)} commands failed, first: {errors[0]}")
    if not done.wait(timeout=float(os.environ.get("BENCH_VISIBLE_TIMEOUT", "120"))):
        done.set()
        watcher.join()
        missing = sorted(set(sent_at) - set(visible_at))[:5]
        raise SystemExit(
            f"bench: only {len(visible_at)} of {n} visible after 120 s; e.g. {missing}"
        )
    done.set()
    watcher.join()
    end = max(visible_at.values())
    engine.dispose()
    to_visible = [visible_at[r] - sent_at[r] for r in sent_at if r in visible_at]
    return {
        "commands": n,
        "visible": len(visible_at),
        "throughput": n / (end - start),
        "command_rate": n / (commands_done - start),
        "p50": percentile(latencies, 0.5) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "vis_p50": percentile(to_visible, 0.5) * 1000,
        "vis_p99": percentile(to_visible, 0.99) * 1000,
    }


class Plain(CarepathAggregate):
    """The smallest aggregate: the bare cost of a save."""


def raw_grpc_rate(address: str, n: int, clients: int) -> float:
    """Bare gRPC: the same clients calling the health check of one of our servers (no token,
    no policy, no store): the floor of a call over loopback on this machine."""
    per_client = max(1, n // clients)

    def client() -> None:
        stub = health_pb2_grpc.HealthStub(grpc_client.channel(address))
        for _ in range(per_client):
            stub.Check(health_pb2.HealthCheckRequest(), timeout=10)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per_client * clients / (time.perf_counter() - start)


def raw_save_rate(url: str, n: int) -> float:
    app = CarepathApplication(env=StoreSettings(url).eventsourcing_env("raw"))
    start = time.perf_counter()
    for _ in range(n):
        app.save(Plain())
    rate = n / (time.perf_counter() - start)
    app.close()
    return rate


def raw_pika_rates(uri: str, n: int, batch: int = 500) -> tuple[float, float]:
    """Bare pika: publish with confirms awaited per batch, then consume with prefetch and
    multiple acks. Returns (publish/s, consume/s)."""
    queue = f"bench.raw.{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.URLParameters(uri))
    ch = conn.channel()
    ch.queue_declare(queue, durable=True)
    acked = [0]

    def on_confirm(frame: object) -> None:
        acked[0] = max(acked[0], frame.method.delivery_tag)  # type: ignore[attr-defined]

    ready: list[bool] = []
    ch._impl.confirm_delivery(ack_nack_callback=on_confirm, callback=lambda _f: ready.append(True))
    while not ready:
        conn.process_data_events(time_limit=0.01)
    body = b"x" * 700  # about one envelope
    props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    start = time.perf_counter()
    for s in range(0, n, batch):
        for _ in range(min(batch, n - s)):
            ch._impl.basic_publish("", queue, body, props)
        target = min(n, s + batch)
        while acked[0] < target:
            conn.process_data_events(time_limit=0.001)
    publish = n / (time.perf_counter() - start)
    ch.basic_qos(prefetch_count=batch)
    got = 0
    start = time.perf_counter()
    last_tag = 0
    for method, _props, _body in ch.consume(queue, inactivity_timeout=1):
        if method is None:
            break
        got += 1
        last_tag = method.delivery_tag
        if got % batch == 0:
            ch.basic_ack(last_tag, multiple=True)
        if got == n:
            break
    if got % batch:
        ch.basic_ack(last_tag, multiple=True)
    consume = got / (time.perf_counter() - start)
    ch.cancel()
    ch.queue_delete(queue)
    conn.close()
    return publish, consume


def composed_limit(legs: list[float]) -> float:
    """The commands/s of a pipeline whose legs run one after another for each command, each at
    its bare rate: 1 / Σ(1 / leg)."""
    return 1 / sum(1 / leg for leg in legs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--workload",
        choices=["mixed", "referrals", "history", "rebuild", "scale", "streams"],
        default="mixed",
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--commands", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--events",
        type=int,
        default=0,
        help="rebuild: events stored (200000); scale: the large read model (1000000)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="sample every process of the system with py-spy while the commands run "
        "(bench/profile.py); raw stacks are kept in DIR",
    )
    args = parser.parse_args()
    allow_test_data()  # its patients are synthetic (make_fnr), here and in the system it starts
    if args.workload == "history":  # one patient, in process: no system, no broker
        from bench import history

        history.run(args.backend, min(args.commands, 100))
        return
    if args.workload == "streams":  # the vendors' streams: bench/streams.py
        from bench import streams

        streams.run(args.backend, args.commands if "--commands" in sys.argv else 2000)
        return
    if args.workload == "rebuild":
        from bench import rebuild

        rebuild.run(args.backend, args.events or rebuild.EVENTS, args.profile)
        return
    if args.workload == "scale":
        from bench import scale

        scale.run(args.backend, args.events or scale.LARGE, args.commands, args.clients)
        return
    with (
        broker() as tenant,
        tempfile.TemporaryDirectory(prefix="carepath-bench-") as tmp,
    ):
        workdir = Path(tmp)
        with database(args.backend, workdir) as urls:
            with system(urls, tenant, workdir) as (addresses, env):
                workload = Workload(args.workload, addresses, args.commands)
                workload.register(urls, env, workdir)
                workload.prepare(urls, args.commands, args.clients)
                recorder = None
                if args.profile:
                    from bench import profile

                    # The system's processes, and this one (the clients and the watcher).
                    pids = {**profile.children(), "bench-clients": os.getpid()}
                    recorder = profile.Recorder(args.profile, pids)
                    time.sleep(1)  # py-spy attached before the clock starts
                started = time.perf_counter()
                ours = run_commands(workload, urls, args.commands, args.clients)
                profiled = time.perf_counter() - started
                print(f"bench: {json.dumps({k: round(v, 1) for k, v in ours.items()})}", flush=True)
                if recorder:
                    recorder.stop()
                bare_grpc = raw_grpc_rate(addresses["referrals"], args.commands, args.clients)
            save = raw_save_rate(urls["raw"], args.commands)
        publish, consume = raw_pika_rates(admin_uri(tenant), max(args.commands, 5000))

    limit = composed_limit([bare_grpc, save, publish, consume])
    print_table(
        f"carepath bench: {args.commands} commands ({args.workload}), {args.clients} clients, "
        f"backend {args.backend}, {ours['visible']} visible",
        [
            (
                "end-to-end commands/s (sent → all visible)",
                f"{ours['throughput']:.0f}",
                f"{ours['throughput'] / limit:.2f} of the composed limit (goal ≥ 0.5)",
            ),
            (
                "gRPC commands/s (accepted)",
                f"{ours['command_rate']:.0f}",
                f"{ours['command_rate'] / limit:.2f} of the composed limit",
            ),
            (
                "command latency p50 / p99 (ms)",
                f"{ours['p50']:.1f} / {ours['p99']:.1f}",
                "goal p99 ≤ 30",
            ),
            (
                "command → visible p50 / p99 (ms)",
                f"{ours['vis_p50']:.0f} / {ours['vis_p99']:.0f}",
                "goal p99 ≤ 250",
            ),
            (
                f"raw: bare gRPC unary call, {args.clients} clients /s",
                f"{bare_grpc:.0f}",
                f"{1e3 / bare_grpc:.2f} ms of one command",
            ),
            (
                f"raw: bare Application.save ({args.backend}) /s",
                f"{save:.0f}",
                f"{1e3 / save:.2f} ms of one command",
            ),
            (
                "raw: bare pika publish, batched confirms /s",
                f"{publish:.0f}",
                f"{1e3 / publish:.2f} ms of one command",
            ),
            (
                "raw: bare pika consume, prefetch 500 /s",
                f"{consume:.0f}",
                f"{1e3 / consume:.2f} ms of one command",
            ),
            (
                "composed limit 1 / Σ(1 / leg) /s",
                f"{limit:.0f}",
                f"{1e3 / limit:.2f} ms per command, the legs in series",
            ),
        ],
    )
    if recorder:
        from bench import profile

        profile.report(recorder.files, profiled, recorder.cpu, commands=args.commands)


def print_table(title: str, rows: list[tuple[str, str, str]]) -> None:
    print(f"\n{title}\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'value':>15}  ratio")
    print(f"{'-' * width}  {'-' * 15}  {'-' * 24}")
    for name, value, ratio in rows:
        print(f"{name.ljust(width)}  {value:>15}  {ratio}")


if __name__ == "__main__":
    main()
