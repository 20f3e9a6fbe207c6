"""The system's processes as `make run` starts them (infra/Procfile), as real subprocesses of a
test: each with its stores, the test session's broker vhost and users, free ports and the
tests' token issuer; its log in a file the test reads to see that it came up."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from shared.broker import Tenant
from tests.support import (
    ISSUER_HOME,
    ROOT,
    TOKEN_ENV,
    admin_uri,
    consumers,
    event_queues,
    free_port,
    projector_copy,
    projector_queue,
    purge_queues,
    wait_for,
)

PROCFILE = ROOT / "infra" / "Procfile"
#: The stores the processes use, by the variable prefix of their URL.
STORES = (
    "referrals",
    "admissions",
    "discharges",
    "medications",
    "registry",
    "pathway",
    "audit",
    "revocations",
)
#: What a process logs once it serves (a gRPC server, the viewer), relays or consumes.
READY = {
    "serve": "listening on",
    "relay": "relaying",
    "project": "consuming",
    "migrate": "schema is current",
    "viewer": "pathway viewer on",
}


@dataclass(frozen=True)
class Command:
    name: str
    argv: list[str]
    env: dict[str, str]

    @property
    def service(self) -> str:
        """The service whose broker user and password the process uses."""
        module = next((a for a in self.argv if a.startswith("services.")), "")
        return module.split(".")[1] if module else self.name

    @property
    def reactions(self) -> str | None:
        """The reactions module this process runs (None for any other process)."""
        return self.argv[-1] if "shared.run_reactions" in self.argv else None


def procfile(path: Path = PROCFILE) -> list[Command]:
    """infra/Procfile's processes (the demo, a client, left out)."""
    found = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, command = line.partition(":")
        words = shlex.split(command)
        env: dict[str, str] = {}
        if words[0] == "env":
            words = words[1:]
            while "=" in words[0]:
                key, _, value = words.pop(0).partition("=")
                env[key] = value
        if words[0] != "python":
            continue  # `demo` runs infra/demo.py: a client, not a process of the system
        found.append(Command(name.strip(), [sys.executable, *words[1:]], env))
    return [c for c in found if c.name != "demo"]


def service_command(service: str, process: str) -> Command:
    return Command(
        f"{service}-{process}", [sys.executable, "-m", f"services.{service}", process], {}
    )


def system_env(urls: Mapping[str, str], broker: Tenant, workdir: Path) -> dict[str, str]:
    """The environment every process of one test system shares (its own ports and queue)."""
    env = {
        **os.environ,
        **TOKEN_ENV,
        **{f"{name.upper()}_DATABASE_URL": urls[name] for name in STORES},
        **{
            f"{name.upper()}_GRPC_ADDRESS": f"127.0.0.1:{free_port()}"
            for name in (
                "pathway",
                "referrals",
                "admissions",
                "discharges",
                "medications",
                "registry",
            )
        },
        "VIEWER_HTTP_ADDRESS": f"127.0.0.1:{free_port()}",
        "CAREPATH_DEV_ISSUER": "1",
        "CAREPATH_VAR_DIR": str(ISSUER_HOME),
        "AMQP_URI": broker.address,
        "AMQP_USER_PREFIX": broker.prefix,
        "PATHWAY_QUEUE": projector_queue("system"),
        "PSYCOPG_WAIT_FUNC": "wait_select",
        "PYTHONWARNINGS": "ignore",
        "LOG_LEVEL": "INFO",
    }
    env.pop("AMQP_PASSWORD", None)
    workdir.mkdir(parents=True, exist_ok=True)
    return env


@dataclass
class Process:
    command: Command
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] = field(repr=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def ready(self) -> bool:
        """It logged that it serves, relays or consumes (or, for migrate, exited 0)."""
        kind = self.command.argv[-1]
        if kind == "migrate":
            return self.popen.poll() == 0
        marker = READY.get(kind) or READY.get(self.command.name)
        if marker is None:
            return True
        if not self.alive():
            raise AssertionError(f"{self.command.name} exited:\n{self.log()[-3000:]}")
        return marker in self.log()

    def stop(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self._log.close()


def start(command: Command, env: Mapping[str, str], broker: Tenant, workdir: Path) -> Process:
    """Start one process as its service's broker user; its output goes to a log file."""
    log_path = workdir / f"{command.name}-{os.urandom(3).hex()}.log"
    log = log_path.open("wb")
    full = {**env, **command.env}
    if command.service in broker.passwords:
        full["AMQP_PASSWORD"] = broker.passwords[command.service]
    popen = subprocess.Popen(command.argv, env=full, cwd=ROOT, stdout=log, stderr=log)
    return Process(command, popen, log_path, log)


@contextmanager
def running(
    commands: list[Command],
    env: Mapping[str, str],
    broker: Tenant,
    workdir: Path,
    timeout: float = 120.0,
) -> Iterator[list[Process]]:
    """Every command started at once; yields once each came up (reactions: once they consume
    every queue of their handlers), and stops them all afterwards."""
    reaction_queues = [q for c in commands if c.reactions for q in event_queues(c.reactions)]
    admin = admin_uri(broker)
    if any(c.argv[-1] == "project" for c in commands):
        projector_copy(broker, env["PATHWAY_QUEUE"])
    purge_queues(admin, reaction_queues)
    processes = [start(c, env, broker, workdir) for c in commands]
    try:
        for process in processes:
            wait_for(process.ready, timeout, f"{process.command.name} to come up")
        wait_for(
            lambda: all(consumers(admin, q) for q in reaction_queues),
            timeout,
            "the reactions to consume",
        )
        yield processes
    finally:
        for process in processes:
            with suppress(ProcessLookupError):
                if process.alive():
                    process.popen.send_signal(signal.SIGTERM)
        for process in processes:
            process.stop()
        purge_queues(admin, reaction_queues)
