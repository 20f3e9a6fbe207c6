"""The fault run (`make chaos`): the whole system as real processes, on a RabbitMQ node and a
PostgreSQL cluster of the run's own (own ports, own data directories; tests/throwaway.py —
never the machine's broker or database), paced commands from the benchmark's clients
(bench/workload.py, mixed workload) while the run restarts the broker, kill -9s the projector,
a relay and a gRPC server (each frozen for 3 s first, so it dies with work in hand), and stops
the database for a while. A supervisor restarts every
process that dies, as compose's `restart: unless-stopped` would, and counts the exits it did
not cause. Then the system settles and the run prints

    commands OK / stored / published / projected / duplicates in the read model / missing /
    rebuild difference / dead letters

and exits 1 on any loss (a command answered OK whose event is not stored, published and
projected), any duplicate, any difference between the live read model and one rebuilt from
the stores into a fresh database, or any dead letter.

A command counts as OK only when the server answered OK. A client retries a failed call with
the same command id (idempotent), as a client following the contract does, for up to two
minutes; a command never answered OK is counted as failed, not as lost.

    make chaos                                           # about 5 minutes
    make chaos CHAOS_ARGS="--plan short"                 # the version `make test` runs

It lives in bench/ beside the benchmark because it is a run of the same kind: the same system
of processes (bench.workload.processes), the same clients and workload, a table at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import grpc
import pika
import sqlalchemy as sa

from bench import workload as bench
from services.pathway import readmodel as rm
from shared.broker import Tenant
from tests.support import DOMAIN_SERVICES, allow_test_data
from tests.throwaway import PostgresCluster, RabbitNode

log = logging.getLogger("chaos")

VHOST = "carepath-chaos"
#: A queue of the run's own bound to every service's exchange: what the relays published.
TAP = "chaos.tap"
#: The codes a client does not retry: its request is wrong, not the system unavailable.
FINAL = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
}
#: A log line at ERROR (plain or JSON logs) or a traceback's first line.
ERROR_LINE = re.compile(r"\bERROR\b|^Traceback")
#: How long a process is frozen before it is killed (so that it dies with work in hand).
FROZEN = 3.0
#: How long a client keeps retrying one command.
RETRY_FOR = 120.0


@dataclass(frozen=True)
class Plan:
    commands: int
    rate: float  # commands per second, paced
    #: (seconds after the first command, fault): broker | projector | relay | grpc | database
    faults: tuple[tuple[float, str], ...]
    database_down: float = 10.0


PLANS = {
    # About 5 minutes on a 2-core machine: ~2.5 minutes of load with every fault, twice the
    # broker and the projector, then settling and the rebuild.
    "full": Plan(
        commands=3000,
        rate=20,
        faults=(
            (10, "broker"),
            (25, "projector"),
            (40, "relay"),
            (55, "grpc"),
            (70, "database"),
            (95, "broker"),
            (110, "projector"),
            (120, "relay"),
            (130, "grpc"),
        ),
    ),
    # `make test` (tests/e2e/test_chaos.py): one broker restart, one projector kill.
    "short": Plan(commands=300, rate=10, faults=((8, "broker"), (18, "projector"))),
}
#: The processes the faults kill, in turn.
RELAYS = ("referrals-relay", "admissions-relay", "medications-relay", "discharges-relay")
SERVERS = ("admissions-serve", "referrals-serve", "medications-serve", "discharges-serve")


@dataclass
class Supervised:
    command: list[str]
    env: dict[str, str]
    log: IO[bytes]
    process: subprocess.Popen[bytes] | None = None
    killed: bool = False
    exits: list[int] = field(default_factory=list)  # exits the run did not cause


class Supervisor:
    """Starts the processes and restarts any that exits, a second later (compose's
    `restart: unless-stopped`); `kill9(name)` is a fault, other exits are findings."""

    def __init__(self, specs: dict[str, tuple[list[str], dict[str, str]]], logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.procs = {
            name: Supervised(command, env, (logs / f"{name}.log").open("ab"))
            for name, (command, env) in specs.items()
        }
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _start(self, proc: Supervised) -> None:
        proc.process = subprocess.Popen(
            proc.command, env=proc.env, stdout=proc.log, stderr=subprocess.STDOUT
        )

    def start(self) -> None:
        for proc in self.procs.values():
            self._start(proc)
        self.thread.start()

    def _watch(self) -> None:
        while not self.stopping.wait(0.5):
            with self.lock:
                for name, proc in self.procs.items():
                    assert proc.process is not None
                    code = proc.process.poll()
                    if code is None:
                        continue
                    if not proc.killed:
                        proc.exits.append(code)
                        log.warning("%s exited by itself (%s); restarting it", name, code)
                    proc.killed = False
                    time.sleep(1)
                    self._start(proc)

    def kill9(self, name: str, frozen: float = FROZEN) -> None:
        """SIGSTOP the process for `frozen` seconds, then SIGKILL it: it dies with work in
        hand (a projector's prefetched batch, a relay's backlog, a server's calls in flight,
        whose clients then retry commands that may already be stored)."""
        proc = self.procs[name]
        assert proc.process is not None
        proc.process.send_signal(signal.SIGSTOP)
        time.sleep(frozen)
        with self.lock:
            proc.killed = True
            proc.process.kill()
            proc.process.wait()

    def error_lines(self) -> dict[str, int]:
        """Lines at ERROR (and tracebacks) each process logged: what an operator would see."""
        counts = {}
        for name, proc in self.procs.items():
            with open(proc.log.name, errors="replace") as f:
                n = sum(1 for line in f if ERROR_LINE.search(line))
            if n:
                counts[name] = n
        return counts

    def exits(self) -> dict[str, list[int]]:
        return {name: proc.exits for name, proc in self.procs.items() if proc.exits}

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        for proc in self.procs.values():
            if proc.process is not None:
                proc.process.terminate()
        for proc in self.procs.values():
            if proc.process is not None:
                try:
                    proc.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.process.kill()
                    proc.process.wait()
            proc.log.close()


@contextmanager
def throwaway_parts(workdir: Path) -> Iterator[tuple[RabbitNode, PostgresCluster]]:
    """The run's own broker node and PostgreSQL cluster, stopped and removed afterwards."""
    node = RabbitNode(workdir / "rabbitmq", VHOST)
    # Room for the whole system, the rebuild and the run's own look-ups (the connection
    # budget is issue 10 item 2, not this run's subject).
    cluster = PostgresCluster(settings={"max_connections": "300"})
    try:
        node.start()
        cluster.start()
        yield node, cluster
    finally:
        node.stop()
        cluster.remove()


def declare_tap(node: RabbitNode) -> None:
    """A quorum queue (it survives the broker's restarts, as the system's queues do) bound to
    every service's exchange: one copy of every message the relays publish."""
    conn = pika.BlockingConnection(pika.URLParameters(node.admin_uri))
    ch = conn.channel()
    ch.queue_declare(TAP, durable=True, arguments={"x-queue-type": "quorum"})
    for service in (*DOMAIN_SERVICES, "pathway"):
        ch.queue_bind(TAP, f"{service}.events", "#")
    conn.close()


def drain_tap(node: RabbitNode) -> Counter[str]:
    """How many times each event id was published."""
    published: Counter[str] = Counter()
    conn = pika.BlockingConnection(pika.URLParameters(node.admin_uri))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=1000)
    for method, _props, body in ch.consume(TAP, inactivity_timeout=3):
        if method is None:
            break
        published[json.loads(body)["event_id"]] += 1
        ch.basic_ack(method.delivery_tag)
    ch.cancel()
    conn.close()
    return published


def dead_letters(node: RabbitNode) -> dict[str, int]:
    """Messages in every dead-letter queue of the vhost."""
    listed = node.ctl("list_queues", "-p", VHOST, "name", "messages", "-q", "--no-table-headers")
    if listed.returncode != 0:
        raise SystemExit(f"chaos: cannot list the queues: {listed.stderr.strip()}")
    found = {}
    for line in listed.stdout.splitlines():
        name, _, count = line.strip().rpartition("\t")
        if "dead" in name:
            found[name] = int(count)
    return found


def stored_ids(urls: dict[str, str]) -> set[str]:
    """Every public event in the stores of the services the run drives (bench.SERVICES), read
    as the relays and a rebuild read it."""
    from shared.outbox import iter_all_envelopes

    found: set[str] = set()
    for name in bench.SERVICES:
        app = DOMAIN_SERVICES[name].application.from_url(urls[name])
        try:
            found |= {envelope.event_id for envelope in iter_all_envelopes(name, app)}
        finally:
            app.close()
    return found


def projected_ids(url: str) -> set[str]:
    engine = rm.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.select(rm.events.c.event_id)).scalars())
    finally:
        engine.dispose()


def timeline_duplicates(url: str) -> int:
    """Timeline entries beyond the first of each event (an event folded in twice)."""
    t = rm.timeline
    engine = rm.create_engine(url)
    try:
        with engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            distinct = sa.select(t.c.patient_key, t.c.event_id).distinct().subquery()
            unique = conn.execute(sa.select(sa.func.count()).select_from(distinct)).scalar_one()
        return int(total) - int(unique)
    finally:
        engine.dispose()


def read_model(url: str) -> dict[str, Counter[tuple[str, ...]]]:
    """The rows a rebuild writes (events, derived tables, the directory), table by table."""
    engine = rm.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table.name: Counter(
                    tuple(str(v) for v in row) for row in conn.execute(sa.select(table))
                )
                for table in (rm.events, *rm.DERIVED, rm.DIRECTORY)
            }
    finally:
        engine.dispose()


def rebuild_difference(cluster: PostgresCluster, env: dict[str, str], live: str) -> int:
    """Rebuild the read model from the stores into a fresh database (`python -m
    services.pathway rebuild`) and count the rows that differ from the live one."""
    with bench.database("postgres", Path(), admin=cluster.url, stores=("rebuilt",)) as urls:
        rebuild_env = {**env, "PATHWAY_DATABASE_URL": urls["rebuilt"]}
        command = [sys.executable, "-m", "services.pathway", "rebuild"]
        subprocess.run(command, env=rebuild_env, check=True, timeout=600)
        return rows_differing(live, urls["rebuilt"])


def rows_differing(one: str, other: str) -> int:
    """Rows of the read model at `one` not at `other` and the other way round."""
    ours, theirs = read_model(one), read_model(other)
    return sum(sum(((ours[t] - theirs[t]) + (theirs[t] - ours[t])).values()) for t in ours)


class Driver:
    """Paced commands from the benchmark's clients: command i is due `i / rate` seconds after
    the start; a failed call is retried with the same command id."""

    def __init__(self, work: bench.Workload, plan: Plan, clients: int) -> None:
        self.work = work
        self.plan = plan
        self.clients = clients
        self.ok: dict[int, str] = {}  # command -> the event id its answer names
        self.failed: dict[int, str] = {}
        self.errors: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.next = 0
        self.start = 0.0

    def _take(self) -> int | None:
        with self.lock:
            if self.next >= self.plan.commands:
                return None
            self.next += 1
            return self.next - 1

    def _send(self, stubs: dict[str, Any], i: int) -> None:
        deadline = time.monotonic() + RETRY_FOR
        pause = 0.2
        while True:
            try:
                event_id = self.work.send(stubs, i)
            except grpc.RpcError as exc:
                code = exc.code()
                with self.lock:
                    self.errors[code.name] += 1
                if code in FINAL or time.monotonic() > deadline:
                    with self.lock:
                        self.failed[i] = f"{code.name}: {exc.details()}"
                    return
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            with self.lock:
                self.ok[i] = event_id
            return

    def _client(self) -> None:
        stubs = self.work.stubs()
        while (i := self._take()) is not None:
            due = self.start + i / self.plan.rate
            time.sleep(max(0.0, due - time.monotonic()))
            self._send(stubs, i)

    def run(self) -> threading.Thread:
        self.start = time.monotonic()
        threads = [threading.Thread(target=self._client) for _ in range(self.clients)]
        for t in threads:
            t.start()

        def join() -> None:
            for t in threads:
                t.join()

        waiter = threading.Thread(target=join)
        waiter.start()
        return waiter


def inject(
    plan: Plan,
    start: float,
    node: RabbitNode,
    cluster: PostgresCluster,
    sup: Supervisor,
    done: Callable[[], bool],
) -> list[str]:
    """The plan's faults at their times; returns what was done, with how long it took."""
    turns: Counter[str] = Counter()
    record = []
    for at, fault in plan.faults:
        time.sleep(max(0.0, start + at - time.monotonic()))
        if done():
            record.append(f"{fault}: not done, the load had ended")
            continue
        t0 = time.monotonic()
        if fault == "broker":
            node.restart()
            what = "broker restarted"
        elif fault == "projector":
            sup.kill9("pathway-project")
            what = f"kill -9 pathway-project, frozen {FROZEN:.0f} s first"
        elif fault == "relay":
            name = RELAYS[turns[fault] % len(RELAYS)]
            sup.kill9(name)
            what = f"kill -9 {name}, frozen {FROZEN:.0f} s first"
        elif fault == "grpc":
            name = SERVERS[turns[fault] % len(SERVERS)]
            sup.kill9(name)
            what = f"kill -9 {name}, frozen {FROZEN:.0f} s first"
        elif fault == "database":
            cluster.stop("fast")
            time.sleep(plan.database_down)
            cluster.start()
            what = f"database stopped for {plan.database_down:.0f} s"
        else:
            raise ValueError(fault)
        turns[fault] += 1
        entry = f"t+{t0 - start:5.1f}s {what} ({time.monotonic() - t0:.1f} s)"
        log.warning("fault: %s", entry)
        record.append(entry)
    return record


def settle(ok: set[str], urls: dict[str, str], timeout: float) -> None:
    """Wait until every command answered OK and every stored event is in the read model (or
    the timeout: what is still missing then is reported as missing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wanted = ok | stored_ids(urls)
        if wanted <= projected_ids(urls["pathway"]):
            return
        time.sleep(2)


@dataclass
class Result:
    rows: list[tuple[str, str]]
    failures: list[str]
    faults: list[str]
    exits: dict[str, list[int]]
    errors: Counter[str]
    failed: dict[int, str]
    error_lines: dict[str, int]


def run(plan: Plan, clients: int, settle_for: float, workdir: Path) -> Result:
    with throwaway_parts(workdir) as (node, cluster):
        tenant: Tenant = node.tenant
        with bench.database("postgres", workdir, admin=cluster.url) as urls:
            env = bench.system_env(urls, tenant, workdir)
            bench.migrate(env)
            declare_tap(node)
            sup = Supervisor(bench.processes(env, tenant), workdir / "logs")
            sup.start()
            try:
                addresses = bench.addresses_of(env)
                for address in addresses.values():
                    channel = grpc.insecure_channel(address)
                    grpc.channel_ready_future(channel).result(timeout=120)
                    channel.close()
                work = bench.Workload("mixed", addresses, plan.commands)
                work.register(urls, env, workdir)
                work.prepare(urls, plan.commands, clients)
                driver = Driver(work, plan, clients)
                loading = driver.run()
                faults = inject(
                    plan, driver.start, node, cluster, sup, lambda: not loading.is_alive()
                )
                loading.join()
                ok = set(driver.ok.values())
                settle(ok, urls, settle_for)
                stored = stored_ids(urls)
                published = drain_tap(node)
                projected = projected_ids(urls["pathway"])
                duplicates = timeline_duplicates(urls["pathway"])
                dead = dead_letters(node)
            finally:
                sup.stop()
            difference = rebuild_difference(cluster, env, urls["pathway"])
    missing = {e for e in ok if e not in stored or e not in published or e not in projected}
    unprojected = stored - projected  # stored events (the stays, the register) never projected
    rows = [
        ("commands sent", f"{plan.commands}"),
        ("commands OK", f"{len(ok)}"),
        ("commands failed (never answered OK)", f"{len(driver.failed)}"),
        ("OK and stored", f"{len(ok & stored)}"),
        ("OK and published", f"{len(ok & set(published))}"),
        (
            "published deliveries (at least once)",
            f"{sum(published.values())} of {len(published)} events",
        ),
        ("OK and projected", f"{len(ok & projected)}"),
        ("duplicates in the read model", f"{duplicates}"),
        ("missing (OK, not stored/published/projected)", f"{len(missing)}"),
        ("stored events never projected (all)", f"{len(unprojected)}"),
        ("rebuild difference (rows)", f"{difference}"),
        ("dead letters", f"{sum(dead.values())}"),
    ]
    failures = []
    if not ok:
        failures.append("no command was answered OK")
    if missing:
        failures.append(f"{len(missing)} commands answered OK are lost, e.g. {sorted(missing)[:3]}")
    if unprojected:
        failures.append(f"{len(unprojected)} stored events not projected")
    if duplicates:
        failures.append(f"{duplicates} duplicate timeline entries")
    if difference:
        failures.append(f"the rebuilt read model differs in {difference} rows")
    if sum(dead.values()):
        failures.append(f"dead letters: {dead}")
    return Result(
        rows, failures, faults, sup.exits(), driver.errors, driver.failed, sup.error_lines()
    )


def report(plan_name: str, plan: Plan, result: Result) -> str:
    lines = [
        f"\ncarepath chaos ({plan_name}): {plan.commands} commands at {plan.rate:g}/s, "
        f"PostgreSQL, a broker node and a cluster of the run's own\n",
        "faults:",
        *(f"  {f}" for f in result.faults),
        "processes that exited by themselves (restarted by the supervisor): "
        + (", ".join(f"{k} x{len(v)}" for k, v in result.exits.items()) or "none"),
        "errors the clients saw (then retried): "
        + (", ".join(f"{k} x{v}" for k, v in result.errors.most_common()) or "none"),
        "ERROR lines and tracebacks in the processes' logs: "
        + (", ".join(f"{k} {v}" for k, v in sorted(result.error_lines.items())) or "none"),
        "",
    ]
    width = max(len(r[0]) for r in result.rows)
    lines.append(f"{'measure'.ljust(width)}  value")
    lines.append(f"{'-' * width}  {'-' * 20}")
    lines += [f"{name.ljust(width)}  {value}" for name, value in result.rows]
    lines.append("")
    lines.append("FAILED: " + "; ".join(result.failures) if result.failures else "OK: no loss")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--plan", choices=sorted(PLANS), default="full")
    parser.add_argument("--commands", type=int, help="override the plan's number of commands")
    parser.add_argument("--rate", type=float, help="override the plan's commands per second")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--settle", type=float, default=180, help="seconds to wait for it all")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    allow_test_data()  # its patients are synthetic (make_fnr), here and in the system it starts
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # the run's own probes of the broker
    plan = PLANS[args.plan]
    plan = Plan(
        commands=args.commands or plan.commands,
        rate=args.rate or plan.rate,
        faults=plan.faults,
        database_down=plan.database_down,
    )
    workdir = Path(tempfile.mkdtemp(prefix="carepath-chaos-"))
    result = run(plan, args.clients, args.settle, workdir)
    print(report(args.plan, plan, result))
    if result.failures:
        print(f"the processes' logs: {workdir / 'logs'}", file=sys.stderr)
        sys.exit(1)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
