"""A RabbitMQ node and a PostgreSQL cluster of their own, for tests and runs that stop,
restart or reconfigure them (TLS listeners, `make chaos`): the machine's broker (5672) and
database (5432) are never touched.

The node has a node name, ports, data and log directories and an Erlang cookie (its own HOME)
of its own, and is provisioned as production's broker is: the definitions imported at boot
(service users with passwords of their own, the topology) plus a loopback-only administrator
(`guest`) for the caller's own admin steps. The cluster is initialised in a directory of its
own, owned by the `postgres` user when run as root (PostgreSQL refuses to run as root).
Both keep their data across `stop()` / `start()`, so a restart is a real one.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from shared import amqp, config
from shared.broker import Tenant, render
from tests.support import ADMIN_PASSWORD, ADMIN_USER, free_port, wait_for

if TYPE_CHECKING:
    from tests.tls import Authority


def rabbitmq_bin(name: str) -> str:
    """Debian's real scripts (its /usr/sbin wrappers switch to the rabbitmq user, whose HOME
    holds the main node's cookie); else whatever is on PATH."""
    for directory in ("/usr/lib/rabbitmq/bin", "/usr/sbin", "/usr/local/sbin"):
        path = Path(directory) / name
        if path.exists():
            return str(path)
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} is not installed (apt-get install rabbitmq-server)")
    return found


def postgres_bin(name: str) -> str:
    """The server binaries (Debian keeps them out of PATH, per major version)."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is not installed (apt-get install postgresql)")
    return path


#: Times a node's first start picks fresh ports when one of its ports was taken.
PORT_ATTEMPTS = 5
#: What a node that could not bind its AMQP listener or its distribution port prints as it
#: exits (`rabbit_networking`'s boot error, Erlang's `inet_tcp_dist`).
PORT_TAKEN = ("could_not_start_listener", "eaddrinuse")


class PortTaken(AssertionError):
    """The node exited because a port it was given was taken by the time it bound it."""


class RabbitNode:
    """A RabbitMQ node in `directory` serving `vhost`: plaintext AMQP on loopback, or with
    `tls` only AMQPS requiring a client certificate signed by that authority. `start()` waits
    until it accepts the administrator; `stop()` stops it by name (data kept)."""

    def __init__(self, directory: Path, vhost: str, tls: Authority | None = None) -> None:
        self.directory = directory
        self.vhost = vhost
        self.tls = tls
        directory.mkdir(parents=True, exist_ok=True)
        self.node = f"carepath-{uuid.uuid4().hex[:8]}@localhost"
        self.prefix = f"n{uuid.uuid4().hex[:6]}-"
        self.passwords = {s: secrets.token_urlsafe(18) for s in config.BROKER_ACCOUNTS}
        definitions = render(vhost, self.prefix, self.passwords)
        definitions["users"].append(
            {"name": ADMIN_USER, "password": ADMIN_PASSWORD, "tags": "administrator"}
        )
        definitions["permissions"].append(
            {"user": ADMIN_USER, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
        )
        (directory / "definitions.json").write_text(json.dumps(definitions))
        (directory / "enabled_plugins").write_text("[].\n")  # no management listener
        (directory / "rabbitmq-env.conf").write_text("")  # not the machine's env file
        self.server: subprocess.Popen[bytes] | None = None
        self.started = False
        self._listen_on(free_port(), free_port())

    def _listen_on(self, port: int, dist_port: int) -> None:
        """The node's configuration for these ports (AMQP or AMQPS, and Erlang distribution)."""
        directory, tls = self.directory, self.tls
        self.port = port
        conf = directory / "rabbitmq.conf"
        if tls is None:
            conf.write_text(f"listeners.tcp.default = 127.0.0.1:{port}\n")
        else:
            conf.write_text(
                "listeners.tcp = none\n"
                f"listeners.ssl.default = 127.0.0.1:{port}\n"
                f"ssl_options.cacertfile = {tls.ca}\n"
                f"ssl_options.certfile = {tls.server_cert}\n"
                f"ssl_options.keyfile = {tls.server_key}\n"
                "ssl_options.verify = verify_peer\n"
                "ssl_options.fail_if_no_peer_cert = true\n"
            )
        with conf.open("a") as f:
            f.write(f"load_definitions = {directory / 'definitions.json'}\n")
        self.env = {
            **os.environ,
            "HOME": str(directory),  # its own Erlang cookie, created there
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_CONFIG_FILE": str(conf),
            "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(directory / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(directory / "log"),
            "RABBITMQ_PID_FILE": str(directory / "rabbitmq.pid"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(directory / "feature_flags"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        self.env.pop("RABBITMQ_ENABLED_PLUGINS", None)
        scheme = "amqp" if tls is None else "amqps"
        self.address = f"{scheme}://localhost:{port}/{self.vhost}"

    @property
    def tenant(self) -> Tenant:
        """The vhost with its service users (never `close()` it: that is the machine's)."""
        return Tenant(self.address, self.vhost, self.prefix, self.passwords)

    @property
    def admin_uri(self) -> str:
        return config.with_credentials(self.address, ADMIN_USER, ADMIN_PASSWORD)

    def start(self, timeout: float = 120) -> None:
        """Start the node and wait until it accepts the administrator. The ports were free
        when they were picked, not necessarily now: on its first start a node whose listener
        could not bind (another process took the port meanwhile) is started again on fresh
        ports. A restart keeps its ports (its clients know the address), so there it fails."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._start(timeout)
            except PortTaken:
                if self.started or attempt == PORT_ATTEMPTS:
                    raise
                self._listen_on(free_port(), free_port())
                continue
            self.started = True
            return

    def _start(self, timeout: float) -> None:
        out = self.directory / "server.out"
        offset = out.stat().st_size if out.exists() else 0
        with out.open("ab") as log:
            self.server = subprocess.Popen(
                [rabbitmq_bin("rabbitmq-server")],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = self.server

        def accepts() -> bool:
            if server.poll() is not None:
                self.server = None
                with out.open("rb") as f:
                    f.seek(offset)
                    said = f.read().decode(errors="replace")
                if any(sign in said for sign in PORT_TAKEN):
                    raise PortTaken(f"{self.node}: a port was taken ({self.port})")
                raise AssertionError(f"the broker node exited; see {out}")
            try:
                amqp.connect(self.admin_uri, "node-probe").close()
            except Exception:
                return False
            return True

        wait_for(accepts, timeout=timeout, what=f"the broker node {self.node}")

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """rabbitmqctl against this node."""
        return subprocess.run(
            [rabbitmq_bin("rabbitmqctl"), "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop(self) -> None:
        if self.server is None:
            return
        self.ctl("stop")
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
        self.server = None

    def restart(self) -> None:
        self.stop()
        self.start()


#: A throwaway cluster: the superuser `postgres`, trusted, no fsync.
INITDB_OPTIONS = ("-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")


class PostgresCluster:
    """A PostgreSQL cluster in a temporary directory of its own, on a port of its own:
    plaintext on loopback, or with `tls` only TLS connections (hostssl) with the server
    certificate of that authority. `url` is the superuser's, without TLS parameters."""

    def __init__(
        self, tls: Authority | None = None, settings: dict[str, str] | None = None
    ) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="carepath-pg-"))
        self.tls = tls
        self.settings = {"fsync": "off", **(settings or {})}
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.port = free_port()
        self.data = self.directory / "data"
        self.server: subprocess.Popen[bytes] | None = None
        self.url = f"postgresql://postgres@localhost:{self.port}/postgres"
        self.probe_url = self.url
        if tls is not None:
            shutil.copy(tls.server_cert, self.directory / "server.pem")
            shutil.copy(tls.server_key, self.directory / "server.key")
            (self.directory / "server.key").chmod(0o600)
            self.settings |= {
                "ssl": "on",
                "ssl_cert_file": str(self.directory / "server.pem"),
                "ssl_key_file": str(self.directory / "server.key"),
            }
            self.probe_url = f"{self.url}?sslmode=verify-full&sslrootcert={tls.ca}"
        if self.as_postgres:
            shutil.chown(self.directory, "postgres")
            for child in self.directory.iterdir():
                shutil.chown(child, "postgres")
        subprocess.run(
            [*self.as_postgres, postgres_bin("initdb"), "-D", str(self.data), *INITDB_OPTIONS],
            check=True,
            capture_output=True,
        )
        hba = "hostssl" if tls is not None else "host"
        (self.data / "pg_hba.conf").write_text(f"{hba} all all 127.0.0.1/32 trust\n")

    def start(self, timeout: float = 60) -> None:
        settings = [
            *(
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.directory}",
            ),
            *(arg for k, v in self.settings.items() for arg in ("-c", f"{k}={v}")),
        ]
        with (self.directory / "server.log").open("ab") as log:
            self.server = subprocess.Popen(
                [
                    *self.as_postgres,
                    *(postgres_bin("postgres"), "-D", str(self.data), "-p", str(self.port)),
                    *settings,
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        server = self.server

        def accepting() -> bool:
            if server.poll() is not None:
                raise AssertionError(f"PostgreSQL exited; see {self.directory / 'server.log'}")
            try:
                psycopg.connect(self.probe_url, connect_timeout=2).close()
            except psycopg.OperationalError:
                return False
            return True

        wait_for(accepting, timeout=timeout, what="the throwaway PostgreSQL")

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop (`fast`: sessions terminated, a clean shutdown; `immediate`: a crash)."""
        if self.server is None:
            return
        subprocess.run(
            [*self.as_postgres, postgres_bin("pg_ctl"), "stop", "-m", mode, "-D", str(self.data)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
        self.server = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
