"""The system's processes as `make run` starts them (infra/Procfile), as real subprocesses: the
one launcher of the tests and the benchmarks (`launch`, `launched`, `running`). Each process
runs with its stores, the session's broker vhost and users, free ports and the token issuer;
its log in a file the test reads to see that it came up."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

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
    "municipal",
    "correspondence",
    "streams",
    "pathway",
    "audit",
    "revocations",
)
#: What a process logs once it serves (a gRPC server, the viewer), relays or consumes.
READY = {
    "serve": "listening on",
    "relay": "relaying",
    "project": "consuming",
    "deliver": "consuming",
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
                "municipal",
                "correspondence",
                "streams",
                "streams_stream",
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
    """One process of the system, started as production starts it (`launch`)."""

    command: Command
    popen: subprocess.Popen[bytes]
    log_path: Path | None
    _log: IO[Any] | None = field(repr=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

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

    def terminate(self) -> None:
        """SIGTERM, as an orchestrator (or honcho) stops a process; `stop` waits for it."""
        with suppress(ProcessLookupError):
            if self.alive():
                self.popen.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
        self.terminate()
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        if self._log is not None:
            self._log.close()


def launch(command: Command, env: Mapping[str, str], log: Path | IO[Any] | None = None) -> Process:
    """Start `command` as production starts it: from the repository's root, in `env` with the
    command's own variables over it. Its output goes to the file `log` (stdout and stderr), or
    its logs (stderr) to the open stream `log`; by default to the caller's."""
    if isinstance(log, Path):
        opened: IO[Any] | None = log.open("wb")
        stdout, stderr = opened, opened
    else:
        opened, stdout, stderr = None, None, log
    popen = subprocess.Popen(
        command.argv, env={**env, **command.env}, cwd=ROOT, stdout=stdout, stderr=stderr
    )
    return Process(command, popen, log if isinstance(log, Path) else None, opened)


@contextmanager
def launched(
    commands: list[Command], env: Mapping[str, str], logs: Path | None = None
) -> Iterator[list[Process]]:
    """Every command started at once (`launch`; each one's output to `logs/<name>.log` when
    `logs` is given), and stopped afterwards: SIGTERM to all of them first, then each waited
    for (SIGKILL after 20 s)."""
    processes: list[Process] = []
    try:
        for command in commands:
            log_path = logs / f"{command.name}-{os.urandom(3).hex()}.log" if logs else None
            processes.append(launch(command, env, log_path))
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.stop()


def as_service_user(command: Command, broker: Tenant) -> Command:
    """`command` connected as its service's broker user (its password in its environment)."""
    password = broker.passwords.get(command.service)
    if password is None:
        return command
    return replace(command, env={**command.env, "AMQP_PASSWORD": password})


@contextmanager
def running(
    commands: list[Command],
    env: Mapping[str, str],
    broker: Tenant,
    workdir: Path,
    timeout: float = 120.0,
) -> Iterator[list[Process]]:
    """Every command started at once, each as its service's broker user with its log in
    `workdir`; yields once each came up (reactions: once they consume every queue of their
    handlers), and stops them all afterwards."""
    reaction_queues = [q for c in commands if c.reactions for q in event_queues(c.reactions)]
    admin = admin_uri(broker)
    if any(c.argv[-1] == "project" for c in commands):
        projector_copy(broker, env["PATHWAY_QUEUE"])
    purge_queues(admin, reaction_queues)
    users = [as_service_user(c, broker) for c in commands]
    try:
        with launched(users, env, workdir) as processes:
            for process in processes:
                wait_for(process.ready, timeout, f"{process.command.name} to come up")
            wait_for(
                lambda: all(consumers(admin, q) for q in reaction_queues),
                timeout,
                "the reactions to consume",
            )
            yield processes
    finally:
        purge_queues(admin, reaction_queues)


@contextmanager
def nameko(
    module: str,
    broker: Tenant,
    urls: dict[str, str],
    purge_first: bool = True,
    env: dict[str, str] | None = None,
    stderr: IO[str] | None = None,
) -> Iterator[Process]:
    """The reaction process of `module` (`python -m shared.run_reactions`), connected as its
    service's broker user (with `env` besides, its logs to `stderr` if given); ready once it
    consumes every queue of its event handlers (the definitions declared them, so they hold
    what was published before: earlier tests' events, purged first unless `purge_first` is
    False). The queues are purged afterwards too."""
    queues = event_queues(module)
    admin = admin_uri(broker)
    if purge_first:
        purge_queues(admin, queues)
    service = module.split(".")[1]
    settings = {
        **os.environ,
        **broker.env(service),
        "PSYCOPG_WAIT_FUNC": "wait_select",
        "PYTHONWARNINGS": "ignore",
        **{f"{name.upper()}_DATABASE_URL": url for name, url in urls.items()},
        **(env or {}),
    }
    command = Command(
        f"{service}-reactions", [sys.executable, "-m", "shared.run_reactions", module], {}
    )
    process = launch(command, settings, stderr)
    try:
        wait_for(
            lambda: all(consumers(admin, q) for q in queues),
            timeout=60,
            what=f"the consumers of {module}",
        )
        yield process
    finally:
        process.stop()
        purge_queues(admin, queues)


@contextmanager
def demo_reactions(broker: Tenant, urls: dict[str, str]) -> Iterator[None]:
    """The nameko processes the demo story needs: discharges' view of the stays and the
    admissions reaction that closes a stay on discharge."""
    with (
        nameko("services.discharges.reactions", broker, urls),
        nameko("services.admissions.reactions", broker, urls),
    ):
        yield
