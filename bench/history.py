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

    make bench BENCH_ARGS="--workload history"                     # SQLite
    make bench BENCH_ARGS="--workload history --backend postgres --commands 50"
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from bench.workload import GP, database, percentile, raw_save_rate
from services.medications.application import MedicationsApplication
from services.medications.domain import MedicationList
from shared.domain import CommandContext
from shared.ids import FNR_SYSTEM
from shared.limits import snapshot_interval
from tests.support import make_fnr

SIZES = (30, 2_000, 10_000)
PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(12, 3, 42, 480)}
T0 = datetime(2016, 1, 4, 9, 0, tzinfo=UTC)
#: Snapshots off: an interval no list in the run reaches.
OFF = 10**9
#: Events per saved command while growing the list.
CHUNK = 50


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
