"""docker-compose.yml renders only with its secrets, and has no default secret; its structure
(healthchecks, the migrate job, stop timeouts, metrics) and the image's (infra/Dockerfile:
runtime dependencies only, a non-root user, a build context of what it copies) hold.

Debian's docker-compose (1.29) validates and renders the file without a Docker engine; CI
installs it (.ci/run). The secrets are found in the file itself (`${VAR:?message}`), so a
secret another change adds is held to the same rule.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

import services.__main__ as migrate_all
from shared import config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
REQUIRED = re.compile(r"\$\{([A-Z][A-Z0-9_]*):\?[^}]*\}")
WITH_DEFAULT = re.compile(r"\$\{([A-Z][A-Z0-9_]*):?-([^}]*)\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|CREDENTIAL")


def required_secrets() -> list[str]:
    return sorted(set(REQUIRED.findall(COMPOSE.read_text())))


def render(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.fail("docker-compose is not installed (apt-get install docker-compose)")
    empty = tmp_path / "empty.env"  # never a developer's .env beside the file
    empty.write_text("")
    clean = {k: v for k, v in os.environ.items() if k not in required_secrets()}
    return subprocess.run(
        [compose, "-f", str(COMPOSE), "--env-file", str(empty), "config"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def placeholders() -> dict[str, str]:
    """A value for each: a path for a file (it is mounted), else a token-like string."""
    values = {}
    for name in required_secrets():
        value = f"test-{name.lower().replace('_', '-')}-0123456789"
        values[name] = f"./{value}.json" if name.endswith("_FILE") else value
    return values


def test_the_compose_file_names_its_secrets() -> None:
    broker_users = {
        f"AMQP_PASSWORD_{who}"
        for who in (
            "REFERRALS",
            "ADMISSIONS",
            "DISCHARGES",
            "MEDICATIONS",
            "REGISTRY",
            "MUNICIPAL",
            "CORRESPONDENCE",
            "PATHWAY",
            "DEADLETTERS",
            "STREAMS",
            "STREAMS_ADMIN",
        )
    }
    assert {"POSTGRES_PASSWORD", "AMQP_PASSWORD_OPERATOR", *broker_users} <= set(required_secrets())


def test_no_secret_has_a_default_value() -> None:
    text = COMPOSE.read_text()
    defaults = [
        (name, value) for name, value in WITH_DEFAULT.findall(text) if SECRET_NAME.search(name)
    ]
    assert defaults == []
    assert "change-me" not in text


def test_it_renders_with_its_secrets_set(tmp_path: Path) -> None:
    result = render(placeholders(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "change-me" not in result.stdout


@pytest.mark.parametrize("missing", required_secrets())
def test_it_does_not_render_without_a_secret(missing: str, tmp_path: Path) -> None:
    env = placeholders()
    del env[missing]
    result = render(env, tmp_path)
    assert result.returncode != 0
    assert missing in result.stderr


# --- The structure production relies on (issue 10, item 7) -------------------------------

DOCKERFILE = ROOT / "infra" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"
#: The stores' owners: every domain service with an event store, the read model, the audit log.
STORE_SERVICES = {
    *(p.parent.name for p in (ROOT / "services").glob("*/application.py")),
    "pathway",
    "audit",
}
PROBE = ["CMD", "python", "-m", "shared.ops", "probe"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose file as docker-compose renders it (anchors and merges resolved)."""
    result = render(placeholders(), tmp_path_factory.mktemp("compose"))
    assert result.returncode == 0, result.stderr
    services: dict[str, Any] = yaml.safe_load(result.stdout)["services"]
    return services


def carepath_containers(services: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in services.items() if v.get("image") == "carepath:latest"}


def seconds(duration: str) -> float:
    """A compose duration ("15s", "1m30s") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_every_long_running_container_has_a_healthcheck(rendered: dict[str, Any]) -> None:
    jobs = {name for name, svc in rendered.items() if svc.get("restart") == "no"}
    assert jobs == {"migrate"}
    for name, svc in rendered.items():
        if name in jobs:
            continue
        test = svc.get("healthcheck", {}).get("test")
        assert test and test != ["NONE"], f"{name} has no healthcheck"
    for name, svc in carepath_containers(rendered).items():
        if name not in jobs:
            assert svc["healthcheck"]["test"] == PROBE, name
            assert svc["environment"]["OPS_PORT"] == "9100", name
            assert svc["environment"]["OPS_HOST"] == "0.0.0.0", name  # for the scraper


def test_no_production_container_accepts_test_data(rendered: dict[str, Any]) -> None:
    """Synthetic identifiers are for `make run` and the tests: in production every process
    refuses them (shared/ids.py), so no container sets CAREPATH_TEST_DATA, nor the development
    issuer."""
    for name, svc in carepath_containers(rendered).items():
        assert "CAREPATH_TEST_DATA" not in svc.get("environment", {}), name
        assert "CAREPATH_DEV_ISSUER" not in svc.get("environment", {}), name


def test_one_migrate_job_that_every_carepath_process_waits_for(rendered: dict[str, Any]) -> None:
    job = rendered["migrate"]
    assert job["command"] == ["python", "-m", "services", "migrate"]
    assert set(migrate_all.STORES) == STORE_SERVICES
    assert job["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name, svc in carepath_containers(rendered).items():
        if name == "migrate":
            continue
        assert svc["depends_on"].get("migrate") == {
            "condition": "service_completed_successfully"
        } or all(  # or it waits for servers that wait for it (the viewer)
            rendered[dep]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
            and cond == {"condition": "service_healthy"}
            for dep, cond in svc["depends_on"].items()
        ), name


def test_a_stopping_process_finishes_before_it_is_killed(rendered: dict[str, Any]) -> None:
    assert config.DEFAULT_GRPC_GRACE_SECONDS < 10  # compose's default stop timeout
    for name, svc in carepath_containers(rendered).items():
        grace = float(
            svc["environment"].get("GRPC_GRACE_SECONDS", config.DEFAULT_GRPC_GRACE_SECONDS)
        )
        assert seconds(svc.get("stop_grace_period", "10s")) > grace + 2, name


def test_the_grpc_grace_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRPC_GRACE_SECONDS", raising=False)
    assert config.grpc_grace_seconds() == config.DEFAULT_GRPC_GRACE_SECONDS
    monkeypatch.setenv("GRPC_GRACE_SECONDS", "2.5")
    assert config.grpc_grace_seconds() == 2.5
    for bad in ("soon", "-1", "3600"):
        monkeypatch.setenv("GRPC_GRACE_SECONDS", bad)
        with pytest.raises(config.ConfigError, match="GRPC_GRACE_SECONDS"):
            config.grpc_grace_seconds()


def test_rabbitmq_metrics_are_served_and_scraped(rendered: dict[str, Any]) -> None:
    mounts = {v.split(":")[1]: v.split(":")[0] for v in rendered["rabbitmq"]["volumes"]}
    plugins = Path(mounts["/etc/rabbitmq/enabled_plugins"]).read_text()
    assert "rabbitmq_prometheus" in plugins and "rabbitmq_management" in plugins
    prometheus = rendered["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    assert Path(mounts["/etc/prometheus"]) == ROOT / "infra" / "prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions (keyword, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            name = args.split(" AS ")[-1].strip() if " AS " in args else str(len(stages))
            current = stages[name] = []
        current.append((keyword.upper(), args.strip()))
    return stages


def lock_pins(path: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", path.read_text(), re.MULTILINE)
    return {name.lower().replace("_", "-"): version for name, version in pins}


def test_the_image_runs_as_a_user_with_runtime_dependencies_only() -> None:
    stages = dockerfile_stages()
    assert list(stages) == ["builder", "runtime"]
    builder, runtime = stages["builder"], stages["runtime"]
    installs = [args for kw, args in builder if kw == "RUN" and "pip install" in args]
    assert installs and all("requirements-runtime.lock" in a for a in installs), installs
    assert all("requirements.lock" not in args for _kw, args in builder + runtime)
    # The runtime stage installs nothing: it copies the builder's venv and the code.
    assert not [a for kw, a in runtime if kw == "RUN" and re.search(r"\b(pip|uv|apt)", a)]
    from_builder = [a for kw, a in runtime if kw == "COPY" and a.startswith("--from=")]
    assert from_builder == ["--from=builder /opt/venv /opt/venv"]
    users = [a for kw, a in runtime if kw == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    copied = [a.split()[0] for kw, a in runtime if kw == "COPY" and not a.startswith("--")]
    assert not [c for c in copied if c.split("/")[0] in ("tests", "bench", "docs", ".")]


def test_the_runtime_lock_has_no_dev_tools_and_the_pins_of_the_full_lock() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[\[=<>~! ;]", r, maxsplit=1)[0].lower() for r in requirements}

    runtime, full = lock_pins(RUNTIME_LOCK), lock_pins(ROOT / "requirements.lock")
    dev = names(project["optional-dependencies"]["dev"])
    assert {"pytest", "ruff", "mypy", "playwright", "grpcio-tools"} <= dev
    assert not dev & set(runtime), "dev tools in requirements-runtime.lock"
    assert names(project["dependencies"]) <= set(runtime), "stale: run make lock"
    assert {n: v for n, v in runtime.items() if full.get(n) != v} == {}, "stale: run make lock"


def test_the_build_context_holds_only_what_the_image_copies() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # everything out (var/, .venv, .git, tests, caches, .env) ...
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        args.split()[-2].rstrip("/")
        for stage in dockerfile_stages().values()
        for kw, args in stage
        if kw == "COPY" and not args.startswith("--from=")
    }
    assert allowed == copied  # ... but what the Dockerfile copies
