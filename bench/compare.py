"""Run the benchmark on an earlier commit and on this tree, back to back, and print both with
their ratio: `make bench-compare BASE=<commit> [BENCH_ARGS=...]`.

The earlier commit runs from a throw-away git worktree with this virtualenv (its own code and
generated protobuf code first on the path), so both runs share the machine, the broker and the
day: compare their ratio, not figures from different days.
"""

from __future__ import annotations

import argparse
import os
import re
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
}


def run(tree: Path, bench_args: list[str]) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'protos'}"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.workload", *bench_args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    print(done.stdout, flush=True)
    if done.returncode != 0:
        raise SystemExit(f"bench failed in {tree}:\n{done.stderr[-2000:]}")
    found = {}
    for line in done.stdout.splitlines():
        for label, name in ROWS.items():
            if line.startswith(label):
                found[name] = float(re.split(r"\s{2,}", line.strip())[1])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base", help="the earlier commit, e.g. 98000f2")
    parser.add_argument("bench_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="carepath-base-") as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), args.base], cwd=ROOT, check=True
        )
        try:
            print(f"=== {args.base} ===", flush=True)
            base = run(tree, args.bench_args)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
    print("=== this tree ===", flush=True)
    ours = run(ROOT, args.bench_args)
    print(f"\n{'measure':<24}  {args.base:>10}  {'this tree':>10}  ratio")
    for name in ROWS.values():
        ratio = ours[name] / base[name] if base.get(name) else float("nan")
        print(f"{name:<24}  {base.get(name, 0):>10.0f}  {ours.get(name, 0):>10.0f}  {ratio:.2f}")
    base_share = base["end-to-end commands/s"] / base["bare save/s"]
    our_share = ours["end-to-end commands/s"] / ours["bare save/s"]
    print(
        f"{'end-to-end / bare save':<24}  {base_share:>10.2f}  {our_share:>10.2f}  "
        f"{our_share / base_share:.2f}"
    )


if __name__ == "__main__":
    main()
