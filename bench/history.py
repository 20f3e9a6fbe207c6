"""`--workload history`: what a command costs as one patient's history grows.

One patient's medication list is grown to 30, 2,000 and 10,000 events (the events a
prescription and dose changes record, saved in commands of 50 events as the service saves
them, so snapshots are taken as in production), then `ChangeDose` is sent `--commands` times
one after another and its latency taken at each size: with snapshots every
`snapshot_interval()` events (limits.toml [snapshots]) and with snapshots off (an interval no
list reaches), each size on a fresh store. The raw leg, bare `Application.save` on the same
backend, runs in the same process.

The latency is the medications application's command (load → rules → save), in process: the
gRPC call, the token and the access policy in front of it cost the same at every size (the
mixed workload measures them).

Then the read side, with snapshots as configured, at each size on a fresh system: the
medications relay, the pathway projector and the pathway's gRPC server run as processes on a
RabbitMQ vhost of the run's own (as `make bench` runs them); the list's history reaches the read
model through the relay and the projector, and the patient's register facts (the bench's GP
office as fastlege) through `project()`. Measured:
- command → visible: from a `ChangeDose`'s answer (in process, as above) until its event is
  in the read model, one command after another;
- `GetPathway` p50/p99 for the patient, by the GP, over gRPC (token, policy, audit log): the
  answer with the first page of the timeline (`TIMELINE_PAGE` entries), as a screen reads it.

    make bench BENCH_ARGS="--workload history"                     # SQLite
    make bench BENCH_ARGS="--workload history --backend postgres --commands 50"
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import grpc
import sqlalchemy as sa

from bench import generate
from bench.workload import (
    GP,
    ISSUER,
    broker,
    database,
    percentile,
    processes,
    raw_save_rate,
    system_env,
)
from carepath.v1 import common_pb2, pathway_pb2, pathway_pb2_grpc
from services.medications.application import MedicationsApplication
from services.medications.domain import MedicationList, medication_list_id
from services.pathway import migrate, readmodel
from services.pathway.projector import project
from services.registry.application import RegistryApplication
from services.registry.domain import Registration
from shared import grpc_client
from shared.auth import bearer_metadata
from shared.broker import Tenant
from shared.domain import CommandContext
from shared.ids import FNR_SYSTEM
from shared.limits import snapshot_interval
from shared.outbox import to_envelope
from tests.support import free_port, make_fnr, projector_copy, projector_queue

SIZES = (30, 2_000, 10_000)
PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(12, 3, 42, 480)}
T0 = datetime(2016, 1, 4, 9, 0, tzinfo=UTC)
#: Snapshots off: an interval no list in the run reaches.
OFF = 10**9
#: Events per saved command while growing the list.
CHUNK = 50
#: Timeline entries per GetPathway (a screen's page; the rest by next_timeline_page_token).
TIMELINE_PAGE = 50


def ctx(i: int) -> CommandContext:
    return CommandContext(f"h-{i}", T0 + timedelta(hours=i), GP, f"history-{i}")


def grow(app: MedicationsApplication, size: int) -> tuple[str, int]:
    """The patient's list with `size` events: started, one prescription, dose changes.
    The changes are triggered as the command records them (its rules would refold the list
    each time: growing is not what is measured). Returns the entry's id and the next index."""
    medication_list = MedicationList.start(ctx(0), PATIENT)
    entry = medication_list.prescribe(ctx(1), "B01AA03", "Warfarin", "5 mg x 1", None)
    for i in range(2, size):
        medication_list.trigger_event(
            MedicationList.MedicationDoseChanged,
            meta=ctx(i).meta(PATIENT),
            entry_id=entry,
            dose=f"{i} mg",
            reason=None,
        )
        if i % CHUNK == 0:
            app.save_command(medication_list)
    app.save_command(medication_list)
    assert medication_list.version == size
    return entry, size


def measure(url: str, size: int, interval: int, commands: int) -> list[float]:
    """ChangeDose latencies (s) on a list of `size` events, snapshots every `interval`."""
    os.environ["CAREPATH_SNAPSHOT_INTERVAL"] = str(interval)
    app = MedicationsApplication.from_url(url)
    try:
        entry, i = grow(app, size)
        latencies = []
        for n in range(commands):
            start = time.perf_counter()
            app.change_dose(ctx(i + n), PATIENT, UUID(entry), f"{i + n} mg x 2", None)
            latencies.append(time.perf_counter() - start)
        return latencies
    finally:
        app.close()


def register(url: str) -> None:
    """The patient's register facts (the bench's GP office as fastlege, 4201 as home) straight
    into the read model through the projector's batch path: the GP may then read the pathway."""
    ctx0 = CommandContext("h-reg", T0, generate.REGISTRY, "h-reg")
    registration = Registration.start(ctx0, PATIENT)
    registration.record_residence(ctx0, generate.MUNICIPALITY.her_id, T0.date())
    registration.assign_fastlege(ctx0, GP.her_id, GP.hpr or "", T0.date(), None)
    envelopes = [
        to_envelope("registry", RegistryApplication, e)  # type: ignore[arg-type]
        for e in registration.collect_events()
        if type(e).__name__ not in RegistryApplication.internal_event_types
    ]
    engine = readmodel.create_engine(url, "tool")
    migrate.upgrade(engine)
    with engine.begin() as conn:
        project(conn, envelopes)
    engine.dispose()


@contextmanager
def read_side(urls: dict[str, str], tenant: Tenant, workdir: Path) -> Iterator[str]:
    """The medications relay, the pathway projector and the pathway server as processes;
    yields the server's address."""
    env = {**system_env(urls, tenant, workdir), "PATHWAY_QUEUE": projector_queue("history")}
    address = env["PATHWAY_GRPC_ADDRESS"] = f"127.0.0.1:{free_port()}"
    projector_copy(tenant, env["PATHWAY_QUEUE"])
    known = processes(env, tenant)
    wanted = [known["medications-relay"], known["pathway-project"]]
    wanted.append(
        ([sys.executable, "-m", "services.pathway", "serve"], known["pathway-project"][1])
    )
    procs = [subprocess.Popen(command, env=penv) for command, penv in wanted]
    try:
        grpc.channel_ready_future(grpc_client.channel(address)).result(timeout=60)
        yield address
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=15)


def visible(engine: sa.Engine, event_id: str, timeout: float = 60) -> None:
    column = readmodel.events.c.event_id
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(sa.select(column).where(column == event_id)).first():
                return
        time.sleep(0.002)
    raise SystemExit(f"bench: {event_id} not visible after {timeout} s")


def measure_read(
    urls: dict[str, str], tenant: Tenant, workdir: Path, size: int, commands: int
) -> tuple[list[float], list[float]]:
    """(command → visible, GetPathway) latencies (s) on a list of `size` events."""
    os.environ["CAREPATH_SNAPSHOT_INTERVAL"] = str(snapshot_interval())
    register(urls["pathway"])
    app = MedicationsApplication.from_url(urls["medications"])
    engine = readmodel.create_engine(urls["pathway"])
    list_id = medication_list_id(PATIENT)
    try:
        entry, i = grow(app, size)
        with read_side(urls, tenant, workdir) as address:
            visible(engine, f"{list_id}:{size}", timeout=600)  # the whole history arrived
            to_visible = []
            for n in range(commands):
                view = app.change_dose(ctx(i + n), PATIENT, UUID(entry), f"{i + n} mg x 2", None)
                start = time.perf_counter()  # from the command's answer, as the mixed workload
                visible(engine, f"{list_id}:{view.version}")
                to_visible.append(time.perf_counter() - start)
            stub = pathway_pb2_grpc.PathwayServiceStub(grpc_client.channel(address))
            request = pathway_pb2.GetPathwayRequest(
                patient=common_pb2.PatientIdentifier(**PATIENT),
                purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
                page_size=TIMELINE_PAGE,
            )
            token = bearer_metadata(ISSUER.mint(GP))
            reads = []
            for n in range(commands + 3):
                start = time.perf_counter()
                stub.GetPathway(request, metadata=token, timeout=60)
                if n >= 3:  # the first ones warm the server
                    reads.append(time.perf_counter() - start)
        return to_visible, reads
    finally:
        engine.dispose()
        app.close()


def run(backend: str, commands: int) -> None:
    configured = snapshot_interval()
    settings = (("snapshots", configured), ("no snapshots", OFF))
    results: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="carepath-bench-") as tmp:
        stores = tuple(f"h{k}_{size}" for k in range(len(settings)) for size in SIZES)
        with database(backend, Path(tmp), stores=(*stores, "raw")) as urls:
            for k, (label, interval) in enumerate(settings):
                for size in SIZES:
                    results[label, size] = measure(urls[f"h{k}_{size}"], size, interval, commands)
            save = raw_save_rate(urls["raw"], 2000)
        reads: dict[int, tuple[list[float], list[float]]] = {}
        with broker() as tenant:
            for size in SIZES:
                print(f"history: the read side at {size} events", flush=True)
                workdir = Path(tmp) / f"read-{size}"
                workdir.mkdir()
                with database(backend, workdir) as urls:
                    reads[size] = measure_read(urls, tenant, workdir, size, commands)

    print(
        f"\ncarepath bench: history, ChangeDose on one patient's medication list, {commands} "
        f"commands per size, backend {backend}, snapshot interval {configured}\n"
    )
    head = f"{'events':>8}  " + "  ".join(
        f"{label + ' p50 / p99 (ms)':>28}" for label, _ in settings
    )
    print(head)
    print("-" * len(head))
    for size in SIZES:
        cells = []
        for label, _ in settings:
            lat = results[label, size]
            cells.append(f"{percentile(lat, 0.5) * 1e3:.1f} / {percentile(lat, 0.99) * 1e3:.1f}")
        print(f"{size:>8}  " + "  ".join(f"{c:>28}" for c in cells))
    for size in SIZES[1:]:
        ratios = []
        for label, _ in settings:
            small, large = results[label, SIZES[0]], results[label, size]
            ratio = percentile(large, 0.5) / percentile(small, 0.5)
            ratios.append(f"{ratio:.2f}")
        print(f"{f'p50 {size}/{SIZES[0]}':>8}  " + "  ".join(f"{r:>28}" for r in ratios))
    print(f"\nraw: bare Application.save ({backend}) /s: {save:.0f}  (goal: ratios ≤ 1.5)")
    print(
        "\nread side, snapshots as configured (relay, projector and pathway server as processes)\n"
    )
    columns = ("command → visible p50 / p99 (ms)", "GetPathway p50 / p99 (ms)")
    head = f"{'events':>8}  {columns[0]:>34}  {columns[1]:>28}"
    print(head)
    print("-" * len(head))
    for size in SIZES:
        cells = [
            f"{percentile(lat, 0.5) * 1e3:.1f} / {percentile(lat, 0.99) * 1e3:.1f}"
            for lat in reads[size]
        ]
        print(f"{size:>8}  {cells[0]:>34}  {cells[1]:>28}")
    for size in SIZES[1:]:
        ratios = [
            percentile(large, 0.5) / percentile(small, 0.5)
            for small, large in zip(reads[SIZES[0]], reads[size], strict=True)
        ]
        label = f"p50 {size}/{SIZES[0]}"
        print(f"{label:>8}  {ratios[0]:>34.2f}  {ratios[1]:>28.2f}")
