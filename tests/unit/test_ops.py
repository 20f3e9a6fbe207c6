"""shared/ops.py on its own: the rounds of checks, the endpoint, the probe's exit codes; and the
dashboard and alert rules refer only to series the code defines (their PromQL checked by
promtool, which `.ci/run` installs)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from shared import ops
from tests.support import ROOT, free_port

DASHBOARD = ROOT / "infra" / "grafana" / "dashboards" / "carepath.json"
ALERTS = ROOT / "infra" / "prometheus" / "alerts.yml"
SERIES = re.compile(r"\bcarepath_[a-z_]+\b")


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def alert_expressions() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for g in groups for rule in g["rules"]]


def test_the_dashboard_and_the_alerts_name_only_series_the_code_defines() -> None:
    defined = ops.metric_names()
    for expressions in (dashboard_expressions(), alert_expressions()):
        used = {name for e in expressions for name in SERIES.findall(e)}
        assert used, "no carepath series used"
        assert used <= defined, f"not defined by shared/ops.py: {sorted(used - defined)}"


def test_the_dashboard_shows_every_family() -> None:
    text = " ".join(dashboard_expressions())
    families = {n.removesuffix("_total").removesuffix("_count") for n in SERIES.findall(text)}
    for wanted in (
        "carepath_rpc_duration_seconds",
        "carepath_commands_stored",
        "carepath_relay_backlog_events",
        "carepath_relay_published_events",
        "carepath_projector_lag_events",
        "carepath_projector_lag_seconds",
        "carepath_projector_batch_size_sum",
        "carepath_relay_batch_size_sum",
        "carepath_dead_letter_messages",
        "carepath_reaction_outcomes",
        "carepath_ready",
        "carepath_dependency_up",
    ):
        assert wanted in families, wanted


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is missing (apt-get install prometheus; .ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_the_dashboards_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each panel's query as a recording rule: promtool parses them."""
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": e}
                    for i, e in enumerate(dashboard_expressions())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_check_that_hangs_counts_as_down_and_listeners_follow() -> None:
    checker = ops.Ops()
    release = threading.Event()
    healthy = threading.Event()
    healthy.set()
    seen: list[bool] = []
    checker.check("store", lambda: healthy.is_set() or release.wait())
    checker.check("broker", lambda: True)
    checker.on_change(seen.append)
    original = ops.CHECK_TIMEOUT
    ops.CHECK_TIMEOUT = 0.2
    try:
        assert checker.run_checks() is True
        healthy.clear()  # the store's check now hangs until released
        assert checker.run_checks() is False
        assert checker.results == {"store": "no answer", "broker": "ok"}
        assert checker.run_checks() is False  # still hanging: not asked twice
        healthy.set()
        release.set()
        checker._running["store"].join(5)
        assert checker.run_checks() is True
    finally:
        ops.CHECK_TIMEOUT = original
        release.set()
    assert seen == [True, False, False, True]


def test_a_failing_check_names_the_exception_type_only() -> None:
    checker = ops.Ops()

    def refuses() -> None:
        raise ConnectionRefusedError("connection to 10.0.0.7 refused for user x")

    checker.check("audit log", refuses)
    checker.check("consumer", lambda: False)
    assert checker.run_checks() is False
    assert checker.results == {"audit log": "ConnectionRefusedError", "consumer": "unavailable"}


def status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPS_PORT"}
    return subprocess.run(
        [sys.executable, "-m", "shared.ops", "probe", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_endpoint_and_the_probe() -> None:
    checker = ops.Ops()
    up = threading.Event()
    checker.check("store", up.is_set)
    server = ops.serve(0, checker, host="127.0.0.1")
    port = server.server_port
    try:
        checker.run_checks()
        assert status(port, "/readyz") == 503
        failed = probe("--port", str(port))
        assert failed.returncode == 1
        assert len(failed.stderr.strip().splitlines()) == 1
        assert "store" in failed.stderr
        up.set()
        checker.run_checks()
        assert status(port, "/readyz") == 200
        assert probe("--port", str(port)).returncode == 0
        assert status(port, "/healthz") == 503  # no checker thread running: not alive
        assert status(port, "/metrics") == 200
        assert status(port, "/nothing") == 404
    finally:
        server.shutdown()
        server.server_close()
    assert probe("--port", str(free_port())).returncode == 1  # nothing listens
    unset = probe()
    assert unset.returncode == 1 and "OPS_PORT" in unset.stderr


def test_the_scrape_passes_promtools_lint() -> None:
    """Every series with a child, as Prometheus reads it (`promtool check metrics`: names,
    units, `_total` counters)."""
    for histogram in (ops.RPC_DURATION, ops.RELAY_BATCH, ops.PROJECTOR_BATCH):
        labels = ["x"] * len(histogram._labelnames)
        histogram.labels(*labels).observe(1)
    for metric in (
        ops.COMMANDS_STORED,
        ops.RELAY_PUBLISHED,
        ops.RELAY_DEAD_LETTERED,
        ops.PROJECTED,
        ops.PROJECTOR_DEAD_LETTERED,
        ops.REACTION_OUTCOMES,
    ):
        metric.labels(*["x"] * len(metric._labelnames)).inc()
    server = ops.serve(0, ops.Ops(), host="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read()
    finally:
        server.shutdown()
        server.server_close()
    assert b"carepath_rpc_duration_seconds_bucket" in text
    checked = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
