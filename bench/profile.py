"""Where the time goes: py-spy on the benchmark's own processes, summed per process.

`make bench BENCH_ARGS="--profile DIR"` samples every process of the system (the children of
the benchmark, found by their command line) with `py-spy record --format raw` while the
commands run, then prints per process its share of the samples and its heaviest frames:

- *self*: the function on top of the stack (where the CPU is when sampled);
- *inclusive*: every frame of this repository (and the libraries named in `FOCUS`) on the
  stack, so `shared.outbox:read_envelopes` counts everything it calls.

Samples are of threads that are running (py-spy leaves idle threads out), at `RATE` per
second; a process that waits on its socket most of the time has few. The raw files stay in DIR
(`flamegraph.pl DIR/<process>.txt > x.svg`, or open them in speedscope).

py-spy is a dev tool, not a dependency: `.venv/bin/pip install py-spy`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

RATE = 100
#: Library frames worth naming in the inclusive table besides this repository's.
FOCUS = ("eventsourcing", "sqlalchemy", "pika", "grpc", "psycopg", "opentelemetry", "pydantic")
#: How a frame of a collapsed stack looks: `function (path/to/file.py:123)`.
FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")


def py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not found:
        raise SystemExit("bench --profile needs py-spy: .venv/bin/pip install py-spy")
    return found


def children() -> dict[str, int]:
    """The benchmark's child processes that run Python modules, by the name the Procfile
    gives them (`referrals-serve`, `pathway-project`, ...)."""
    found: dict[str, int] = {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid != me or b"-m" not in argv:
            continue
        args = [a.decode() for a in argv if a]
        module = args[args.index("-m") + 1]
        rest = args[args.index("-m") + 2 :]
        if module == "shared.run_reactions" and rest:  # shared.run_reactions services.<x>.reactions
            name = f"{rest[0].split('.')[1]}-reactions"
        else:
            name = "-".join([module.rsplit(".", 1)[-1], *rest[:1]])
        found[name] = int(entry)
    return found


class Recorder:
    """py-spy attached to each named process until `stop()`."""

    def __init__(self, directory: Path, pids: dict[str, int], rate: int = RATE) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.files = {name: directory / f"{name}.txt" for name in pids}
        binary = py_spy()
        self._spies = []
        for name, pid in pids.items():
            command = [binary, "record", "--format", "raw", "--rate", str(rate), "--nonblocking",
                       "--pid", str(pid), "-o", str(self.files[name])]  # fmt: skip
            spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._spies.append(spy)

    def stop(self) -> None:
        for spy in self._spies:
            spy.send_signal(signal.SIGINT)
        for spy in self._spies:
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()


def _frame_name(frame: str) -> tuple[str, str]:
    """(module:function, file) of a collapsed frame; py-spy names a file by its path below its
    entry of sys.path (`shared/outbox.py`, `sqlalchemy/engine/base.py`)."""
    match = FRAME.match(frame)
    if not match:
        return frame, ""
    path = match["file"]
    for marker in ("site-packages/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path.removesuffix('.py').replace('/', '.')}:{match['func']}", path


def _counted(path: str) -> bool:
    """Whether a frame of this file is named in the inclusive table."""
    return path.startswith(("shared/", "services/", *(f"{lib}/" for lib in FOCUS)))


Frames = list[tuple[str, int]]


def summarise(path: Path, top: int = 15) -> tuple[int, Frames, Frames]:
    """(samples, heaviest self frames, heaviest inclusive frames of ours and FOCUS)."""
    total = 0
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame_name(f) for f in stack.split(";")]
        frames = [f for f in frames if not f[0].startswith("process ")]  # py-spy's thread label
        if frames:
            own[frames[-1][0]] += count
        seen = set()
        for name, file in frames:
            if name in seen:
                continue
            if _counted(file):
                seen.add(name)
                inclusive[name] += count
    # Entry points (on every stack) say nothing: leave out what is on nearly all of them.
    heavy = [(f, c) for f, c in inclusive.most_common() if c < 0.95 * total]
    return total, own.most_common(top), heavy[: top + 5]


def report(files: dict[str, Path], seconds: float, top: int = 12) -> None:
    """Print each process's share and its heaviest frames."""
    sums = {name: summarise(path, top) for name, path in files.items() if path.exists()}
    grand = sum(total for total, _, _ in sums.values()) or 1
    print(f"\nprofile (py-spy, {RATE}/s, running threads only, {seconds:.0f} s):")
    print(f"{'process':<22} {'samples':>8} {'CPU s':>7} {'share':>6}")
    ranked = sorted(sums.items(), key=lambda kv: -kv[1][0])
    for name, (total, _, _) in ranked:
        print(f"{name:<22} {total:>8} {total / RATE:>7.1f} {total / grand:>6.0%}")
    for name, (total, own, incl) in ranked:
        if not total:
            continue
        print(f"\n== {name}: {total} samples ({total / RATE / seconds:.0%} of one core)")
        print("   self                                                          %")
        for frame, count in own:
            print(f"   {frame[:62]:<62} {count / total:>5.1%}")
        print("   inclusive (ours and " + ", ".join(FOCUS[:3]) + ", ...)")
        for frame, count in incl:
            print(f"   {frame[:62]:<62} {count / total:>5.1%}")


def main() -> None:
    """`python -m bench.profile DIR`: the report of raw files recorded earlier."""
    directory = Path(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    report({p.stem: p for p in sorted(directory.glob("*.txt"))}, seconds)


if __name__ == "__main__":
    main()
