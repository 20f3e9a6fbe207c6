"""`--workload scale`: GetPathway and ListPathways as the read model grows from 10,000 events to
1,000,000 (`--events`).

Each read model is loaded through the projector's batch path (`services.pathway.projector.
project(conn, envelopes)`, one transaction per batch of `PER_BATCH` patients' envelopes, as a
projector batch is written), from synthetic patients' courses mapped to envelopes by the relays'
mapping (bench/generate.py; about 21 events a patient, all living in municipality 4201 with the
bench's GP office as fastlege). No store and no broker: what is measured is the read side.

Then the pathway's gRPC server (`python -m services.pathway serve`, as a process, with its
token check, access policy and audit log) answers, from `--clients` threads:
- `GetPathway` for patients picked at random from the whole read model (the GP, as fastlege);
- `ListPathways`, the first page (50) of municipality 4201's worklist, which holds every patient
  (a fifth as many calls: at 1,000,000 events each one pages a worklist of ~48,000 patients).

    make bench BENCH_ARGS="--workload scale"                       # 10,000 and 1,000,000
    make bench BENCH_ARGS="--workload scale --events 200000"       # a quicker large one
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from bench import generate
from bench.workload import ISSUER, database, percentile, print_table
from carepath.v1 import common_pb2, pathway_pb2, pathway_pb2_grpc
from services.pathway import migrate, readmodel
from services.pathway.projector import project
from shared import grpc_client
from shared.auth import bearer_metadata
from tests.support import free_port

SMALL = 10_000
LARGE = 1_000_000
#: Patients per projector transaction while loading (about 2,100 events).
PER_BATCH = 100


def load(url: str, events: int) -> tuple[list[str], float]:
    """Project `events` (rounded up to whole patients) into the read model at `url`; returns
    the patients' numbers and the events/s of the load."""
    patients = math.ceil(events / generate.published_per_patient())
    engine = readmodel.create_engine(url, "tool")
    migrate.upgrade(engine)
    done, start, last = 0, time.perf_counter(), time.perf_counter()
    try:
        for batch in generate.envelope_batches(patients, PER_BATCH):
            with engine.begin() as conn:
                project(conn, batch)
            done += len(batch)
            if time.perf_counter() - last > 15:
                last = time.perf_counter()
                rate = done / (last - start)
                eta = (patients * generate.published_per_patient() - done) / rate
                print(f"  projected {done} events ({rate:.0f}/s, ~{eta:.0f} s to go)", flush=True)
    finally:
        engine.dispose()
    rate = done / (time.perf_counter() - start)
    numbers = [n for _, n in zip(range(patients), generate.numbers(), strict=False)]
    return numbers, rate


def timed(calls: int, clients: int, call: Callable[[Any, int], object], stub: Any) -> list[float]:
    """Latencies (s) of `calls` calls from `clients` threads, each with its own channel."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(worker: int) -> None:
        own = stub(worker)
        mine = []
        for i in range(worker, calls, clients):
            start = time.perf_counter()
            try:
                call(own, i)
            except grpc.RpcError as exc:
                errors.append(exc)
                return
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"bench: {len(errors)} calls failed, first: {errors[0]}")
    return latencies


def measure(
    urls: dict[str, str], numbers: list[str], calls: int, clients: int, workdir: Path
) -> dict[str, list[float]]:
    """GetPathway and ListPathways latencies against `python -m services.pathway serve`."""
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "PATHWAY_DATABASE_URL": urls["pathway"],
        "AUDIT_DATABASE_URL": urls["audit"],
        "PATHWAY_GRPC_ADDRESS": address,
        "CAREPATH_TOKEN_ISSUER": ISSUER.iss,
        "CAREPATH_TOKEN_AUDIENCE": ISSUER.aud,
        "CAREPATH_JWKS_FILE": str(ISSUER.write_jwks(workdir / "jwks.json")),
        "CAREPATH_VAR_DIR": str(workdir),
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen([sys.executable, "-m", "services.pathway", "serve"], env=env)
    gp = bearer_metadata(ISSUER.mint(generate.GP))
    municipality = bearer_metadata(ISSUER.mint(generate.MUNICIPALITY))
    picks = random.Random(11).choices(numbers, k=calls)
    purpose = common_pb2.ACCESS_PURPOSE_CARE_COORDINATION

    def stub(_worker: int) -> pathway_pb2_grpc.PathwayServiceStub:
        return pathway_pb2_grpc.PathwayServiceStub(grpc_client.channel(address))

    def get(s: pathway_pb2_grpc.PathwayServiceStub, i: int) -> object:
        patient = common_pb2.PatientIdentifier(**generate.patient(picks[i]))
        request = pathway_pb2.GetPathwayRequest(patient=patient, purpose=purpose)
        return s.GetPathway(request, metadata=gp, timeout=30)

    def worklist(s: pathway_pb2_grpc.PathwayServiceStub, _i: int) -> object:
        request = pathway_pb2.ListPathwaysRequest(
            municipality_her_id=generate.MUNICIPALITY.her_id, page_size=50, purpose=purpose
        )
        return s.ListPathways(request, metadata=municipality, timeout=30)

    try:
        grpc.channel_ready_future(grpc_client.channel(address)).result(timeout=60)
        timed(2 * clients, clients, get, stub)  # warm: connections, caches
        timed(2 * clients, clients, worklist, stub)
        return {
            "GetPathway": timed(calls, clients, get, stub),
            # A fifth as many: on the large read model each call pages a worklist of ~50,000.
            "ListPathways": timed(max(calls // 5, 50), clients, worklist, stub),
        }
    finally:
        server.terminate()
        server.wait(timeout=15)


def run(backend: str, large: int, calls: int, clients: int) -> None:
    calls = min(calls, 2000)
    sizes = (SMALL, large)
    results: dict[int, dict[str, list[float]]] = {}
    rates: dict[int, float] = {}
    for size in sizes:
        print(f"scale: loading a read model of {size} events ({backend})", flush=True)
        with (
            tempfile.TemporaryDirectory(prefix="carepath-bench-") as tmp,
            database(backend, Path(tmp), stores=("pathway", "audit")) as urls,
        ):
            numbers, rates[size] = load(urls["pathway"], size)
            print(f"  loaded {len(numbers)} patients at {rates[size]:.0f} events/s", flush=True)
            results[size] = measure(urls, numbers, calls, clients, Path(tmp))

    rows = []
    for call in ("GetPathway", "ListPathways"):
        for size in sizes:
            lat = results[size][call]
            p50, p99 = percentile(lat, 0.5) * 1e3, percentile(lat, 0.99) * 1e3
            rows.append((f"{call} at {size:,} events p50 / p99 (ms)", f"{p50:.1f} / {p99:.1f}", ""))
        small, big = results[SMALL][call], results[large][call]
        ratio = percentile(big, 0.99) / percentile(small, 0.99)
        rows.append((f"{call} p99 {large:,} / {SMALL:,}", f"{ratio:.2f}", "goal ≤ 1.3"))
    for size in sizes:
        rows.append((f"load through project(), {size:,} events/s", f"{rates[size]:.0f}", ""))
    print_table(
        f"carepath bench: scale, {calls} GetPathway and {max(calls // 5, 50)} ListPathways "
        f"calls, {clients} clients, backend {backend}",
        rows,
    )
