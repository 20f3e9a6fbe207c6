"""What an operator sees of a process: Prometheus metrics, liveness and readiness.

Every process (gRPC servers, relays, the projector, the nameko reactions, the viewer) serves
one small HTTP endpoint on `OPS_PORT` (unset: none) with

- `/metrics`: the `carepath_*` series below (and prometheus-client's process series);
- `/healthz`: liveness, 200 while the process's loop and its dependency checker are alive;
- `/readyz`: readiness, 200 while every dependency of the process answered at the last round
  of checks (its store and the broker, the read model, the access and audit databases), else
  503 with the failing ones named (exception types only: no personal data).

The dependency checks run in one background thread every `OPS_CHECK_INTERVAL_SECONDS`
(default 2 s), never per call; the same round refreshes the gauges that need a look outside
the process (a relay's backlog, queue and dead-letter depths by a passive `queue_declare`, which
needs no management plugin) and tells the listeners (a gRPC server's health: NOT_SERVING while
a dependency is down, SERVING again when it returns).

    python -m shared.ops probe [--port P] [--live]

exits 0 when the local process's /readyz (with --live: /healthz) answers 200, else 1 with one
line on stderr: what the compose healthchecks call.

Metric labels carry service, method, queue and outcome names only, never personal data.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from shared import config

log = logging.getLogger(__name__)

# --- the metrics (every carepath_* series is defined here) ---------------------------------

#: Batch sizes: one event up to a full batch (500).
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

RPC_DURATION = Histogram(
    "carepath_rpc_duration_seconds",
    "gRPC calls handled, by service, method and status code, and how long they took",
    ["service", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
COMMANDS_STORED = Counter(
    "carepath_commands_stored_total", "Commands whose events were stored", ["service"]
)
RELAY_BACKLOG = Gauge(
    "carepath_relay_backlog_events",
    "Stored notifications not published yet (store head minus the relay's position)",
    ["service"],
)
RELAY_POSITION = Gauge(
    "carepath_relay_position", "The relay's position in the notification log", ["service"]
)
RELAY_PUBLISHED = Counter(
    "carepath_relay_published_events_total", "Events published (confirmed)", ["service"]
)
RELAY_BATCH = Histogram(
    "carepath_relay_batch_size",
    "Notifications read per published batch",
    ["service"],
    buckets=BATCH_BUCKETS,
)
RELAY_DEAD_LETTERED = Counter(
    "carepath_relay_dead_lettered_events_total",
    "Stored events that break the contract, dead-lettered by the relay",
    ["service"],
)
PROJECTED = Counter(
    "carepath_projector_events_total", "Messages projected into the read model", ["queue"]
)
PROJECTOR_BATCH = Histogram(
    "carepath_projector_batch_size",
    "Messages per projected batch",
    ["queue"],
    buckets=BATCH_BUCKETS,
)
PROJECTOR_DEAD_LETTERED = Counter(
    "carepath_projector_dead_lettered_total",
    "Messages the projector dead-lettered (contract or read model refused them)",
    ["queue"],
)
PROJECTOR_LAG_EVENTS = Gauge(
    "carepath_projector_lag_events", "Messages waiting in the projector's queue", ["queue"]
)
PROJECTOR_LAG_SECONDS = Gauge(
    "carepath_projector_lag_seconds",
    "How far the read model is behind: now minus the recorded time of the last projected event "
    "while messages wait, else how old that event was when it was projected",
    ["queue"],
)
REACTION_OUTCOMES = Counter(
    "carepath_reaction_outcomes_total",
    "Reaction deliveries by outcome: applied, retried (returned to the queue), dead_lettered",
    ["service", "handler", "outcome"],
)
QUEUE_MESSAGES = Gauge(
    "carepath_queue_messages", "Messages ready in a consumer's queue (passive declare)", ["queue"]
)
DEAD_LETTERS = Gauge(
    "carepath_dead_letter_messages", "Messages in a dead-letter queue (passive declare)", ["queue"]
)
DEPENDENCY_UP = Gauge(
    "carepath_dependency_up",
    "1 when the dependency answered at the last round of checks, else 0",
    ["dependency"],
)
READY = Gauge("carepath_ready", "1 when every dependency of the process answered, else 0")


def metric_names() -> set[str]:
    """Every carepath series name a scrape can show (a counter's `_total`, a histogram's
    `_count`, `_sum` and `_bucket`), labelled children or not."""
    suffixes = {"counter": ("_total",), "histogram": ("_count", "_sum", "_bucket"), "gauge": ("",)}
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        if family.name.startswith("carepath_")
        for suffix in suffixes[family.type]
    }


# --- checks ----------------------------------------------------------------------------------

Check = Callable[[], object]
#: How long a round waits for a check's answer before it counts the dependency as down.
CHECK_TIMEOUT = 3.0


def database(engine: Any) -> Check:
    """A check that the SQLAlchemy `engine`'s database answers (shared.sql.ping: on
    PostgreSQL a short connection of its own, so the check holds none between rounds)."""
    from shared import sql

    return lambda: sql.ping(engine)


def grpc_service(address: str, timeout: float = 2.0) -> Check:
    """A check that the gRPC server at `address` reports SERVING (grpc.health.v1)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from shared import grpc_client

    channel = grpc_client.channel(address)
    stub = health_pb2_grpc.HealthStub(channel)

    def serving() -> bool:
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    return serving


class _Projection:
    """The projector's lag in seconds, from its last batch and its queue's depth."""

    def __init__(self) -> None:
        self.last_recorded: float | None = None
        self.delay = 0.0


class Ops:
    """The process's dependency checks, run in one background thread, and their listeners."""

    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}
        self.results: dict[str, str] = {}
        self.listeners: list[Callable[[bool], None]] = []
        self.broker_uri: str | None = None
        self.queues: list[str] = []
        self.dead_letter_queues: list[str] = []
        self.projector_queue: str | None = None
        self.projection = _Projection()
        self.process = "carepath"
        self.interval = 2.0
        self.ready = False
        self.last_round = 0.0
        self.last_beat: float | None = None
        self._thread: threading.Thread | None = None
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()
        self._broker: Any = None  # the checker's own pika connection (queue depths)
        self._running: dict[str, threading.Thread] = {}
        self._answers: dict[str, str] = {}

    # -- registration
    def check(self, name: str, check: Check) -> None:
        """A dependency `check`: raises (or returns False) when the dependency is unreachable."""
        self.checks[name] = check

    def watch_queues(
        self,
        broker_uri: str,
        queues: Sequence[str] = (),
        dead_letters: Sequence[str] = (),
        projector: str | None = None,
    ) -> None:
        """Refresh the depth of these queues each round over a connection of the checker's
        own (as `broker_uri`'s user: a passive declare needs no permission). `projector`: the
        queue whose depth is the projector's lag in events."""
        self.broker_uri = broker_uri
        for queue in (*queues, *([projector] if projector else [])):
            if queue not in self.queues:
                self.queues.append(queue)
        for queue in dead_letters:
            if queue not in self.dead_letter_queues:
                self.dead_letter_queues.append(queue)
        if projector:
            self.projector_queue = projector

    def on_change(self, listener: Callable[[bool], None]) -> None:
        """`listener(ready)` after every round (a gRPC server's health follows it)."""
        self.listeners.append(listener)

    def beat(self) -> None:
        """The process's main loop is alive (liveness); loops call it each iteration."""
        self.last_beat = time.monotonic()

    # -- the projector's lag
    def projected(self, queue: str, recorded: Sequence[float], size: int) -> None:
        """A batch of `size` messages committed; `recorded`: their recorded times (epoch)."""
        PROJECTED.labels(queue).inc(size)
        PROJECTOR_BATCH.labels(queue).observe(size)
        if recorded:
            newest = max(recorded)
            self.projection.last_recorded = newest
            self.projection.delay = max(0.0, time.time() - newest)
            PROJECTOR_LAG_SECONDS.labels(queue).set(self.projection.delay)

    def _projector_lag(self, queue: str, waiting: int) -> None:
        PROJECTOR_LAG_EVENTS.labels(queue).set(waiting)
        last = self.projection.last_recorded
        if waiting and last is not None:  # behind: as old as the last event it got to
            PROJECTOR_LAG_SECONDS.labels(queue).set(max(0.0, time.time() - last))
        elif not waiting:  # caught up: as far behind as its last batch was
            PROJECTOR_LAG_SECONDS.labels(queue).set(self.projection.delay)

    # -- a round of checks
    def _depths(self) -> None:
        import pika
        from pika.exceptions import AMQPError, ChannelClosedByBroker

        from shared import amqp

        assert self.broker_uri is not None
        if self._broker is None or not self._broker.is_open:
            self._broker = amqp.connect(self.broker_uri, f"{self.process}-ops")
        connection: pika.BlockingConnection = self._broker
        try:
            for queue in [*self.queues, *self.dead_letter_queues]:
                channel = connection.channel()
                try:
                    declared = channel.queue_declare(queue, passive=True)
                except ChannelClosedByBroker as exc:
                    if exc.reply_code != 404:  # refused: not a depth to report as 0
                        raise
                    count = 0  # not declared (yet): nothing waits in it
                else:
                    count = int(declared.method.message_count)
                    channel.close()
                gauge = DEAD_LETTERS if queue in self.dead_letter_queues else QUEUE_MESSAGES
                gauge.labels(queue).set(count)
                if queue == self.projector_queue:
                    self._projector_lag(queue, count)
        except (AMQPError, OSError):
            self._close_broker()
            raise

    def _close_broker(self) -> None:
        if self._broker is not None:
            try:
                if self._broker.is_open:
                    self._broker.close()
            except Exception:
                pass
        self._broker = None

    def _answer(self, name: str, check: Check) -> None:
        try:
            answer = check()
        except Exception as exc:
            self._answers[name] = type(exc).__name__
        else:
            self._answers[name] = "unavailable" if answer is False else "ok"

    def run_checks(self) -> bool:
        """One round: every check, and the queue depths, each in a thread of its own, so one
        that hangs (a pool waiting for a database that refuses connections) is counted as
        failing after `CHECK_TIMEOUT` and is not asked again until it has answered; returns
        readiness."""
        checks = dict(self.checks)
        if self.broker_uri is not None:
            checks["broker"] = self._depths
        deadline = time.monotonic() + CHECK_TIMEOUT
        for name, check in checks.items():
            running = self._running.get(name)
            if running is None or not running.is_alive():
                self._answers.pop(name, None)
                thread = threading.Thread(
                    target=self._answer, args=(name, check), name=f"ops-check {name}", daemon=True
                )
                self._running[name] = thread
                thread.start()
        for name in checks:
            self._running[name].join(max(0.0, deadline - time.monotonic()))
        results = {name: self._answers.get(name, "no answer") for name in checks}
        for name, result in results.items():
            DEPENDENCY_UP.labels(name).set(1 if result == "ok" else 0)
        ready = all(r == "ok" for r in results.values())
        if ready != self.ready:
            failing = ", ".join(f"{k} ({v})" for k, v in results.items() if v != "ok")
            if ready:
                log.info("ready")
            else:
                log.warning("not ready: %s", failing)
        self.results, self.ready = results, ready
        READY.set(1 if ready else 0)
        self.last_round = time.monotonic()
        for listener in self.listeners:
            try:
                listener(ready)
            except Exception:
                log.exception("a readiness listener failed")
        return ready

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_checks()

    def alive(self) -> bool:
        """Liveness: the checker went round lately, and the main loop (if it beats) beat."""
        stale = max(60.0, 10 * self.interval)
        now = time.monotonic()
        if self._thread is None or not self._thread.is_alive() or now - self.last_round > stale:
            return False
        return self.last_beat is None or now - self.last_beat <= stale

    # -- start and stop
    def start(self, process: str) -> None:
        """Run a first round now, then check in the background; serve the endpoint when
        OPS_PORT is set."""
        self.process = process
        self.interval = config.ops_check_interval()
        self._stop.clear()
        self.run_checks()
        self._thread = threading.Thread(target=self._loop, name="ops-checks", daemon=True)
        self._thread.start()
        port = config.ops_port()
        if port is not None:
            self._server = serve(port, self, config.ops_host())
            log.info("%s: metrics and health on port %d", process, self._server.server_port)

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._close_broker()


#: The process's one Ops (entry points register their checks on it, then `start` it).
OPS = Ops()


# --- the HTTP endpoint --------------------------------------------------------------------


def serve(port: int, ops: Ops, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """/metrics, /healthz and /readyz on `port` (0: a free one), in a daemon thread (under
    eventlet a green thread: the standard library is patched)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                alive = ops.alive()
                self._json(200 if alive else 503, {"alive": alive})
            elif path == "/readyz":
                self._json(200 if ops.ready else 503, {"ready": ops.ready, "checks": ops.results})
            else:
                self._json(404, {"error": "not found"})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._answer(status, json.dumps(body).encode(), "application/json")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes and probes every few seconds: not worth a line each

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="ops-http", daemon=True).start()
    return server


def probe(port: int, path: str = "/readyz", timeout: float = 3.0) -> str | None:
    """None when http://127.0.0.1:port/path answers 200, else why not (one line)."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return None if answer.status == 200 else f"{path}: HTTP {answer.status}"
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace").strip()
        return f"{path}: HTTP {exc.code} {body}"[:300]
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{path}: not answering on port {port} ({reason})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.ops")
    commands = parser.add_subparsers(dest="command", required=True)
    probe_parser = commands.add_parser("probe", help="exit 0 when the local process is ready")
    probe_parser.add_argument("--port", type=int, help="default: OPS_PORT")
    probe_parser.add_argument("--live", action="store_true", help="liveness (/healthz) instead")
    args = parser.parse_args(argv)
    try:
        port = args.port if args.port is not None else config.ops_port()
    except config.ConfigError as exc:
        sys.exit(f"carepath: {exc}")
    if port is None:
        sys.exit("carepath: OPS_PORT is not set and no --port given")
    failure = probe(port, "/healthz" if args.live else "/readyz")
    if failure is not None:
        sys.exit(f"carepath: not {'alive' if args.live else 'ready'}: {failure}")


if __name__ == "__main__":
    main()
