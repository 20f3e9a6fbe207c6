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
#: Frames that wait (py-spy counts a thread blocked in these as running): a stack ending in one
#: is idle and left out of the shares.
IDLE = frozenset(
    {
        "pika.adapters.select_connection:PollPoller.poll",
        "threading:Condition.wait",
        "threading:Event.wait",
        "threading:Thread._wait_for_tstate_lock",
        "concurrent.futures.thread:_worker",
        "grpc._server:_serve",
        "eventlet.hubs.epolls:Hub.do_poll",
        "",
    }
)
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Recorder:
    """py-spy attached to each named process until `stop()`, and each one's CPU time over the
    same span."""

    def __init__(self, directory: Path, pids: dict[str, int], rate: int = RATE) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.pids = pids
        self.cpu = {name: -cpu_seconds(pid) for name, pid in pids.items()}
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
        for name, pid in self.pids.items():
            self.cpu[name] += cpu_seconds(pid)
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
        frames = [_frame_name(f) for f in stack.split(";")]
        frames = [f for f in frames if not f[0].startswith("process ")]  # py-spy's thread label
        if not frames or frames[-1][0] in IDLE:
            continue
        total += count
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


def report(
    files: dict[str, Path],
    seconds: float,
    cpu: dict[str, float] | None = None,
    top: int = 12,
    commands: int = 0,
) -> None:
    """Print each process's CPU time (when measured; per command, given `commands`) and busy
    samples, and its heaviest frames."""
    sums = {name: summarise(path, top) for name, path in files.items() if path.exists()}
    cpu = cpu or {}
    grand = sum(cpu.values()) or 1
    print(f"\nprofile over {seconds:.1f} s (py-spy at {RATE}/s; waiting stacks left out):")
    print(
        f"{'process':<22} {'CPU s':>7} {'of all':>7} {'cores':>6} {'CPU ms/command':>15} "
        f"{'busy samples':>13}"
    )
    ranked = sorted(sums.items(), key=lambda kv: -cpu.get(kv[0], kv[1][0] / RATE))
    per = 1e3 / commands if commands else 0.0
    for name, (total, _, _) in ranked:
        used = cpu.get(name, 0.0)
        print(
            f"{name:<22} {used:>7.1f} {used / grand:>7.0%} {used / seconds:>6.2f} "
            f"{used * per:>15.2f} {total:>13}"
        )
    if cpu:
        all_cpu = sum(cpu.values())
        print(
            f"{'all':<22} {all_cpu:>7.1f} {'':>7} {all_cpu / seconds:>6.2f} {all_cpu * per:>15.2f}"
        )
    for name, (total, own, incl) in ranked:
        if not total:
            continue
        print(f"\n== {name}: {cpu.get(name, 0):.1f} CPU s, {total} busy samples")
        print("   self                                                          %")
        for frame, count in own:
            print(f"   {frame[:62]:<62} {count / total:>5.1%}")
        print("   inclusive (ours and " + ", ".join(FOCUS[:3]) + ", ...)")
        for frame, count in incl:
            print(f"   {frame[:62]:<62} {count / total:>5.1%}")


def under(path: Path, function: str, top: int = 15) -> tuple[int, Frames]:
    """(samples with `function` on the stack, its callees' shares): where that frame's time
    goes, one level down (`(self)`: in the function itself)."""
    total = 0
    callees: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        names = [_frame_name(f)[0] for f in stack.split(";")]
        at = next((i for i, n in enumerate(names) if n.endswith(function)), None)
        if at is None:
            continue
        total += int(count_text)
        callees[names[at + 1] if at + 1 < len(names) else "(self)"] += int(count_text)
    return total, callees.most_common(top)


def main() -> None:
    """`python -m bench.profile DIR [SECONDS] [FUNCTION]`: the report of raw files recorded
    earlier, or, with FUNCTION (`module:function` or its tail), its callees in each."""
    directory = Path(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    files = {p.stem: p for p in sorted(directory.glob("*.txt"))}
    if len(sys.argv) > 3:
        for name, path in files.items():
            total, callees = under(path, sys.argv[3])
            if total:
                print(f"\n== {name}: {sys.argv[3]} on {total} samples; its callees:")
                for frame, count in callees:
                    print(f"   {frame[:70]:<70} {count / total:>5.1%}")
        return
    report(files, seconds)


if __name__ == "__main__":
    main()
