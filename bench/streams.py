"""`--workload streams`: the vendors' event streams, on the real system (every service, relay
and the projector as processes, the vendor delivery and the event stream server as
`python -m services.streams deliver|stream`), one run:

- **replay**: a subscription's history of `--commands` events (prescriptions for patients of
  the served municipality) read over the gRPC stream from position 0, events/s, against the
  raw read rate of the same history (a plain SELECT of the `stream_events` rows) — goal ≥ 0.5;
- **live latency** p50/p99 from a command (sent over gRPC) to the event at a gRPC stream
  reader and at the vendor's AMQP consumer (its provisioned user on its own queue), one
  command at a time;
- **memory** of the event stream server (RSS and threads of its process) before and with
  1,000 open idle streams.

    make bench BENCH_ARGS="--workload streams"                     # SQLite, 2,000 events
    make bench BENCH_ARGS="--workload streams --backend postgres --commands 5000"
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pika
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp

from bench.workload import (
    GP,
    ISSUER,
    MUNICIPALITY,
    STORES,
    Workload,
    broker,
    database,
    percentile,
    system,
)
from carepath.v1 import (
    common_pb2,
    medications_pb2,
    medications_pb2_grpc,
    streams_pb2,
    streams_pb2_grpc,
)
from services.streams import streamlog
from services.streams.application import StreamsApplication
from services.streams.domain import Organisation
from services.streams.provisioning import VendorBroker, new_password
from services.streams.purposes import SubscriptionPurpose
from shared import config, grpc_client
from shared.access.model import OPERATOR_ROLE
from shared.actors import Actor, OrgKind
from shared.auth import bearer_metadata
from shared.broker import Tenant
from shared.domain import CommandContext
from shared.sql import engine
from tests.support import admin_uri, free_port

NAME = "bench-ehr"
VENDOR = Actor("7766001", OrgKind.REGISTRY)
OPERATOR = Actor("112374", OrgKind.REGISTRY, roles=frozenset({OPERATOR_ROLE}))
LIVE = 200
IDLE_STREAMS = 1000


def _subscribe(urls: dict[str, str], tenant: Tenant) -> str:
    """The vendor's subscription (as an operator's command creates it), provisioned on the
    run's vhost; its broker password."""
    app = StreamsApplication.from_url(urls["streams"])
    command = f"bench-{uuid.uuid4()}"
    ctx = CommandContext(command, datetime.now(UTC), OPERATOR, command)
    s = app.create_subscription(
        ctx, NAME, Organisation(VENDOR.her_id, "REGISTRY", "Fjordvik EPJ AS"),
        SubscriptionPurpose.HEALTH_CARE, ["MedicationPrescribed"], [],
        [Organisation(MUNICIPALITY, "MUNICIPALITY", "Fjordvik kommune")], False,
    )  # fmt: skip
    password = new_password()
    VendorBroker(tenant.vhost, tenant.prefix).provision(s.name, s.queue, password)
    app.close()
    return password


@contextlib.contextmanager
def _streams_processes(
    env: dict[str, str], tenant: Tenant, address: str
) -> Iterator[subprocess.Popen[bytes]]:
    py = sys.executable
    deliver = subprocess.Popen(
        [py, "-m", "services.streams", "deliver"],
        env={**env, "AMQP_PASSWORD": tenant.passwords["streams"]},
    )
    stream = subprocess.Popen(
        [py, "-m", "services.streams", "stream"],
        env={**env, "STREAMS_STREAM_GRPC_ADDRESS": address},
    )
    try:
        grpc.channel_ready_future(grpc.insecure_channel(address)).result(timeout=60)
        yield stream
    finally:
        for p in (deliver, stream):
            p.terminate()
        for p in (deliver, stream):
            p.wait(timeout=30)


def _prescribe(stub: Any, number: str, i: int) -> None:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    stub.PrescribeMedication(
        medications_pb2.PrescribeMedicationRequest(
            metadata=common_pb2.CommandMetadata(command_id=f"bench-rx-{uuid.uuid4()}",
                                                occurred_at=stamp),
            patient=common_pb2.PatientIdentifier(system="urn:oid:2.16.578.1.12.4.1.4.1",
                                                 value=number),
            medication=medications_pb2.Medication(atc_code="A10BA02", name="Metformin"),
            dose="500 mg x 2",
            reason=f"Oppfølging {i}",
        ),
        metadata=bearer_metadata(ISSUER.mint(GP)),
        timeout=30,
    )  # fmt: skip


def _history(address: str, numbers: list[str], n: int, clients: int) -> None:
    def work(worker: int) -> None:
        stub = medications_pb2_grpc.MedicationServiceStub(grpc_client.channel(address))
        for i in range(worker, n, clients):
            _prescribe(stub, numbers[i % len(numbers)], i)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _queued(tenant: Tenant) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(admin_uri(tenant)))
    try:
        declared = conn.channel().queue_declare(f"vendor.{NAME}", passive=True)
        return int(declared.method.message_count)
    finally:
        conn.close()


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(0.1)


def _raw_read(url: str) -> float:
    """Rows/s of a plain SELECT of the whole stream log (position, envelope)."""
    eng = engine(url)
    t = streamlog.stream_events
    started = time.perf_counter()
    with eng.connect() as conn:
        rows = conn.execute(sa.select(t.c.position, t.c.envelope).order_by(t.c.position)).all()
    elapsed = time.perf_counter() - started
    eng.dispose()
    return len(rows) / elapsed


def _replay(address: str, n: int) -> float:
    stub = streams_pb2_grpc.EventStreamServiceStub(grpc.insecure_channel(address))
    metadata = bearer_metadata(ISSUER.mint(VENDOR))
    started = time.perf_counter()
    got = 0
    call = stub.Subscribe(
        streams_pb2.SubscribeRequest(subscription=NAME, from_position=0), metadata=metadata
    )
    for item in call:
        if item.WhichOneof("item") == "event":
            got += 1
            if got == n:
                break
    elapsed = time.perf_counter() - started
    call.cancel()
    return got / elapsed


def _live(
    medications: str,
    stream_address: str,
    head: int,
    tenant: Tenant,
    password: str,
    numbers: list[str],
) -> tuple[list[float], list[float]]:
    """Latency (ms) of LIVE commands, one at a time, to the stream reader and to the AMQP
    consumer."""
    at_stream: queue.Queue[float] = queue.Queue()
    at_amqp: queue.Queue[float] = queue.Queue()
    stub = streams_pb2_grpc.EventStreamServiceStub(grpc.insecure_channel(stream_address))
    call = stub.Subscribe(
        streams_pb2.SubscribeRequest(subscription=NAME, from_position=head),
        metadata=bearer_metadata(ISSUER.mint(VENDOR)),
    )

    def read_stream() -> None:
        with contextlib.suppress(grpc.RpcError):
            for item in call:
                if item.WhichOneof("item") == "event":
                    at_stream.put(time.perf_counter())

    user = VendorBroker(tenant.vhost, tenant.prefix).user(NAME)
    conn = pika.BlockingConnection(
        pika.URLParameters(config.with_credentials(tenant.address, user, password))
    )
    channel = conn.channel()
    stop = threading.Event()

    def read_amqp() -> None:
        consuming = channel.consume(f"vendor.{NAME}", auto_ack=True, inactivity_timeout=0.05)
        for method, _, _ in consuming:
            if method is not None:
                at_amqp.put(time.perf_counter())
            if stop.is_set():
                break

    readers = [threading.Thread(target=read_stream, daemon=True)]
    readers[0].start()
    stub_rx = medications_pb2_grpc.MedicationServiceStub(grpc_client.channel(medications))
    to_stream: list[float] = []
    to_amqp: list[float] = []
    amqp_thread = threading.Thread(target=read_amqp, daemon=True)
    amqp_thread.start()
    for i in range(LIVE):
        sent = time.perf_counter()
        _prescribe(stub_rx, numbers[i % len(numbers)], i)
        to_stream.append((at_stream.get(timeout=60) - sent) * 1000)
        to_amqp.append((at_amqp.get(timeout=60) - sent) * 1000)
    stop.set()
    amqp_thread.join(5)
    call.cancel()
    with contextlib.suppress(Exception):
        conn.close()
    return to_stream, to_amqp


def _memory(pid: int) -> tuple[float, int]:
    """RSS (MiB) and threads of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


async def _idle_streams(address: str, count: int, head: int, pid: int) -> tuple[float, int]:
    """RSS (MiB) and threads of the stream server while `count` streams are open at the head
    (10 connections), each past its first heartbeat."""
    metadata = bearer_metadata(ISSUER.mint(VENDOR))
    channels = [grpc.aio.insecure_channel(address) for _ in range(10)]
    calls = []
    for i in range(count):
        stub = streams_pb2_grpc.EventStreamServiceStub(channels[i % len(channels)])
        calls.append(
            stub.Subscribe(
                streams_pb2.SubscribeRequest(subscription=NAME, from_position=head),
                metadata=metadata,
            )
        )
    await asyncio.gather(*(c.read() for c in calls))
    measured = _memory(pid)
    for c in calls:
        c.cancel()
    for channel in channels:
        await channel.close()
    return measured


def run(backend: str, n: int, clients: int = 8) -> None:
    with broker() as tenant, tempfile.TemporaryDirectory(prefix="carepath-bench-") as tmp:
        workdir = Path(tmp)
        with (
            database(backend, workdir, stores=(*STORES, "streams")) as urls,
            system(urls, tenant, workdir) as (addresses, env),
        ):
            address = f"127.0.0.1:{free_port()}"
            env = {
                **env,
                "STREAMS_DATABASE_URL": urls["streams"],
                "STREAM_HEARTBEAT_SECONDS": "2",
            }
            workload = Workload("mixed", addresses, 200)
            workload.register(urls, env, workdir)
            subprocess.run(
                [sys.executable, "-m", "services.streams", "migrate"], env=env, check=True
            )
            password = _subscribe(urls, tenant)
            with _streams_processes(env, tenant, address) as stream_process:
                _history(addresses["medications"], workload.numbers, n, clients)
                _wait(lambda: _queued(tenant) >= n, 600, f"{n} events in the vendor's queue")
                raw = _raw_read(urls["streams"])
                replay = _replay(address, n)
                # the queue's history read (as the vendor would have), then live
                conn = pika.BlockingConnection(pika.URLParameters(admin_uri(tenant)))
                conn.channel().queue_purge(f"vendor.{NAME}")
                conn.close()
                log_engine = engine(urls["streams"])
                to_stream, to_amqp = _live(
                    addresses["medications"], address, streamlog.head(log_engine), tenant,
                    password, workload.numbers,
                )  # fmt: skip
                rss_before, threads_before = _memory(stream_process.pid)
                head = streamlog.head(log_engine)
                log_engine.dispose()
                rss_open, threads_open = asyncio.run(
                    _idle_streams(address, IDLE_STREAMS, head, stream_process.pid)
                )

    rows = [
        ("replay from position 0 (events/s)", f"{replay:.0f}", f"{replay / raw:.2f} of raw read"),
        ("raw: SELECT of the stream_events rows (/s)", f"{raw:.0f}", "1.00"),
        (
            "live: command → gRPC stream reader p50 / p99 (ms)",
            f"{percentile(to_stream, 0.5):.0f} / {percentile(to_stream, 0.99):.0f}",
            f"{LIVE} commands, one at a time",
        ),
        (
            "live: command → vendor's AMQP consumer p50 / p99 (ms)",
            f"{percentile(to_amqp, 0.5):.0f} / {percentile(to_amqp, 0.99):.0f}",
            "",
        ),
        (
            "stream server RSS, no stream open (MiB)",
            f"{rss_before:.0f}",
            f"{threads_before} threads",
        ),
        (
            f"stream server RSS, {IDLE_STREAMS} idle streams open (MiB)",
            f"{rss_open:.0f}",
            f"{threads_open} threads; "
            f"{(rss_open - rss_before) * 1024 / IDLE_STREAMS:.0f} KiB per stream",
        ),
    ]
    print(f"\ncarepath bench: streams, {n} events of history, backend {backend}\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'value':>15}  ratio / note")
    print(f"{'-' * width}  {'-' * 15}  {'-' * 24}")
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value:>15}  {note}")
