"""Run the benchmark on an earlier commit and on this tree, back to back, and print both with
their ratio: `make bench-compare BASE=<commit> [ROUNDS=3] [BENCH_ARGS=...]`.

The earlier commit runs from a throw-away git worktree with this virtualenv (its own code and
generated protobuf code first on the path), so both runs share the machine, the broker and the
hour. The two alternate for a number of rounds (base, ours, base, ours, ...) and the medians are
compared: one run on this machine varies by a tenth or more from the next.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The rows compared (label in the bench's table → short name).
ROWS = {
    "end-to-end commands/s (sent → all visible)": "end-to-end commands/s",
    "gRPC commands/s (accepted)": "gRPC commands/s",
    "raw: bare Application.save": "bare save/s",
    "composed limit 1 / Σ(1 / leg)": "composed limit/s",
}


def run(tree: Path, bench_args: list[str], attempts: int = 4) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'protos'}"}
    for attempt in range(attempts):
        done = subprocess.run(
            [sys.executable, "-m", "bench.workload", *bench_args],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            break
        print(f"bench failed in {tree} (attempt {attempt + 1}):\n{done.stderr[-1500:]}")
    else:
        raise SystemExit(f"bench failed in {tree}")
    print(done.stdout, flush=True)
    found = {}
    for line in done.stdout.splitlines():
        for label, name in ROWS.items():
            if line.startswith(label):
                found[name] = float(re.split(r"\s{2,}", line.strip())[1])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base", help="the earlier commit, e.g. 98000f2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("bench_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    base: list[dict[str, float]] = []
    ours: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="carepath-base-") as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), args.base], cwd=ROOT, check=True
        )
        try:
            for round_ in range(1, args.rounds + 1):
                print(f"=== round {round_}: {args.base} ===", flush=True)
                base.append(run(tree, args.bench_args))
                print(f"=== round {round_}: this tree ===", flush=True)
                ours.append(run(ROOT, args.bench_args))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
    e2e = "end-to-end commands/s"
    rounds = ", ".join(f"{o[e2e] / b[e2e]:.2f}" for b, o in zip(base, ours, strict=True))
    print(f"\n{args.rounds} rounds, end-to-end ratio per round: {rounds}")
    print(f"{'median of':<24}  {args.base:>10}  {'this tree':>10}  ratio")
    for name in ROWS.values():
        if any(name not in r for r in (*base, *ours)):
            print(f"{name:<24}  (not printed by both benchmarks)")
            continue
        b = statistics.median(r[name] for r in base)
        o = statistics.median(r[name] for r in ours)
        print(f"{name:<24}  {b:>10.0f}  {o:>10.0f}  {o / b:.2f}")


if __name__ == "__main__":
    main()
