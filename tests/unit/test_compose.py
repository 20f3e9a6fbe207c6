"""docker-compose.yml renders only with its secrets, and has no default secret.

Debian's docker-compose (1.29) validates and renders the file without a Docker engine; CI
installs it (.ci/run). The secrets are found in the file itself (`${VAR:?message}`), so a
secret another change adds is held to the same rule.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

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
        for who in ("REFERRALS", "ADMISSIONS", "DISCHARGES", "MEDICATIONS", "REGISTRY", "PATHWAY")
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
