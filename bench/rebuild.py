"""`--workload rebuild`: how fast `python -m services.pathway rebuild` rebuilds the read model,
against how fast the same stores' notification logs can merely be read, in the same run.

The services' stores are filled with `--events` (200,000) published events of synthetic
patients (bench/generate.py: the domain's commands, saved a hundred patients per transaction
by `Application.save`, not one gRPC command at a time). Then, one after another on the same
stores:

1. raw read: every notification of every store, `recorder.select_notifications` in pages of
   2,000 — no mapping, no projection: the floor of reading the stores;
2. read + map: the same through `shared.outbox.iter_batches` (notification → domain event →
   public envelope by the service's contract, what the relays and the rebuild read);
3. rebuild: `python -m services.pathway rebuild` as a process of its own (what an operator
   runs), from its start to its exit.

    make bench BENCH_ARGS="--workload rebuild"                         # SQLite, 200,000
    make bench BENCH_ARGS="--workload rebuild --backend postgres --events 50000"
    make bench BENCH_ARGS="--workload rebuild --profile var/profile"   # py-spy on the rebuild
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from bench import generate
from bench.workload import database, print_table
from services.pathway import readmodel
from shared import config
from shared.outbox import iter_batches

EVENTS = 200_000
PAGE = 2000


def raw_read(urls: dict[str, str]) -> tuple[int, float]:
    """(notifications, seconds) reading every store's notification log, nothing else."""
    count, elapsed = 0, 0.0
    for name, cls in generate.APPS.items():
        app = cls.from_url(urls[name], config.pool("store-tool"))
        try:
            start = time.perf_counter()
            position = 0
            while True:
                page = app.recorder.select_notifications(position, PAGE, inclusive_of_start=False)
                if not page:
                    break
                count += len(page)
                position = page[-1].id
            elapsed += time.perf_counter() - start
        finally:
            app.close()
    return count, elapsed


def mapped_read(urls: dict[str, str]) -> tuple[int, float]:
    """(envelopes, seconds) reading every store as the rebuild does, mapped to envelopes."""
    count, elapsed = 0, 0.0
    for name, cls in generate.APPS.items():
        app = cls.from_url(urls[name], config.pool("store-tool"))
        try:
            start = time.perf_counter()
            for envelopes in iter_batches(name, app, PAGE):
                count += len(envelopes)
            elapsed += time.perf_counter() - start
        finally:
            app.close()
    return count, elapsed


def rebuild(urls: dict[str, str], profile: Path | None) -> tuple[int, float]:
    """(events in the read model, seconds) of `python -m services.pathway rebuild`."""
    env = {
        **os.environ,
        **{f"{name.upper()}_DATABASE_URL": url for name, url in urls.items()},
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "services.pathway", "migrate"]
    subprocess.run(command, env=env, check=True)  # the schema first: not part of the rebuild
    command[-1] = "rebuild"
    if profile:
        from bench.profile import RATE, py_spy

        profile.mkdir(parents=True, exist_ok=True)
        command = [py_spy(), "record", "--format", "raw", "--rate", str(RATE), "--nonblocking",
                   "-o", str(profile / "pathway-rebuild.txt"), "--", *command]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    elapsed = time.perf_counter() - start
    engine = readmodel.create_engine(urls["pathway"], "tool")
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(readmodel.events)).scalar_one()
    engine.dispose()
    return int(count), elapsed


def run(backend: str, events: int, profile: Path | None) -> None:
    per_patient = generate.published_per_patient()
    patients = math.ceil(events / per_patient)
    print(f"rebuild: storing {patients} patients × {per_patient} events ({backend})", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="carepath-bench-") as tmp,
        database(backend, Path(tmp), stores=(*generate.APPS, "pathway")) as urls,
    ):
        start = time.perf_counter()
        stored = generate.fill(urls, patients)
        fill_seconds = time.perf_counter() - start
        stored_total = sum(stored.values())
        print(f"  stored {stored_total} events in {fill_seconds:.0f} s", flush=True)
        notifications, raw_seconds = raw_read(urls)
        envelopes, mapped_seconds = mapped_read(urls)
        print(f"  read {notifications} notifications, mapped {envelopes} envelopes", flush=True)
        projected, rebuild_seconds = rebuild(urls, profile)

    raw_rate = notifications / raw_seconds
    mapped_rate = envelopes / mapped_seconds
    rebuild_rate = projected / rebuild_seconds
    print_table(
        f"carepath bench: rebuild of {projected} events ({patients} patients, "
        f"{notifications} notifications with the internal ones), backend {backend}",
        [
            (
                "rebuild: python -m services.pathway rebuild, events/s",
                f"{rebuild_rate:.0f}",
                f"{rebuild_rate / raw_rate:.3f} of the raw read (goal ≥ 20,000/s)",
            ),
            ("rebuild: wall time (s, process start to exit)", f"{rebuild_seconds:.1f}", ""),
            (
                "read + map to envelopes (iter_batches), events/s",
                f"{mapped_rate:.0f}",
                f"{mapped_rate / raw_rate:.3f} of the raw read",
            ),
            ("raw: notification log read, notifications/s", f"{raw_rate:.0f}", "1.00"),
            (
                "stored by Application.save, batched, events/s",
                f"{stored_total / fill_seconds:.0f}",
                "domain commands included",
            ),
        ],
    )
    if profile:
        from bench import profile as spy

        spy.report({"pathway-rebuild": profile / "pathway-rebuild.txt"}, rebuild_seconds)
