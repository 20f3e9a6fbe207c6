"""TLS for tests: a throwaway certificate authority (trustme) with server and client
certificates on disk, and a throwaway RabbitMQ node that listens only for AMQPS.

The machine's own broker has no TLS listener and is never reconfigured or restarted: the
node started here has a node name, ports, data and log directories, and an Erlang cookie
(its own HOME) of its own, and is stopped by name afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import trustme

from shared import amqp, config
from shared.broker import Tenant, render
from shared.config import ClientTLS, ServerTLS
from tests.support import free_port, wait_for

#: The names the servers' certificates carry: what clients dial on loopback.
SERVER_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class Authority:
    """A CA's files: servers present `server_*`, clients `client_*`; everyone trusts `ca`."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_tls(self, client_auth: bool = True) -> ServerTLS:
        return ServerTLS(
            self.server_cert, self.server_key, client_ca=self.ca if client_auth else None
        )

    def client_tls(self, with_certificate: bool = True) -> ClientTLS:
        if not with_certificate:
            return ClientTLS(ca=self.ca)
        return ClientTLS(ca=self.ca, cert=self.client_cert, key=self.client_key)


def make_authority(directory: Path, client_name: str = "hospital-system.test") -> Authority:
    """A new CA under `directory`, with a server certificate for loopback and a client one."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="carepath test CA")
    server = ca.issue_cert(*SERVER_NAMES)
    client = ca.issue_cert(client_name)
    files = Authority(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    server.private_key_pem.write_to_path(str(files.server_key))
    for i, pem in enumerate(server.cert_chain_pems):
        pem.write_to_path(str(files.server_cert), append=i > 0)
    client.private_key_pem.write_to_path(str(files.client_key))
    for i, pem in enumerate(client.cert_chain_pems):
        pem.write_to_path(str(files.client_cert), append=i > 0)
    return files


def _rabbitmq_bin(name: str) -> str:
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


#: The vhost of the throwaway AMQPS broker.
VHOST = "carepath-tls"


@contextmanager
def tls_broker(authority: Authority, directory: Path) -> Iterator[Tenant]:
    """A RabbitMQ node of its own that speaks only AMQPS and requires a client certificate
    signed by `authority`, provisioned from the definitions as every broker is (a vhost with
    the service users); yields that tenant."""
    directory.mkdir(parents=True, exist_ok=True)
    node = f"carepath-tls-{uuid.uuid4().hex[:8]}@localhost"
    port, dist_port = free_port(), free_port()
    conf = directory / "rabbitmq.conf"
    conf.write_text(
        "listeners.tcp = none\n"
        f"listeners.ssl.default = 127.0.0.1:{port}\n"
        f"ssl_options.cacertfile = {authority.ca}\n"
        f"ssl_options.certfile = {authority.server_cert}\n"
        f"ssl_options.keyfile = {authority.server_key}\n"
        "ssl_options.verify = verify_peer\n"
        "ssl_options.fail_if_no_peer_cert = true\n"
    )
    # Provisioned as production's broker is: the definitions imported at boot (service users
    # with passwords of their own, the topology), plus a loopback-only administrator for the
    # tests' own admin steps (copies of the projector's queue, purges).
    prefix = f"tls{uuid.uuid4().hex[:6]}-"
    passwords = {s: secrets.token_urlsafe(18) for s in config.BROKER_ACCOUNTS}
    definitions = render(VHOST, prefix, passwords)
    definitions["users"].append({"name": "guest", "password": "guest", "tags": "administrator"})
    definitions["permissions"].append(
        {"user": "guest", "vhost": VHOST, "configure": ".*", "write": ".*", "read": ".*"}
    )
    (directory / "definitions.json").write_text(json.dumps(definitions))
    with conf.open("a") as f:
        f.write(f"load_definitions = {directory / 'definitions.json'}\n")
    (directory / "enabled_plugins").write_text("[].\n")  # no management listener
    (directory / "rabbitmq-env.conf").write_text("")  # not the machine's env file
    env = {
        **os.environ,
        "HOME": str(directory),  # its own Erlang cookie, created there
        "RABBITMQ_NODENAME": node,
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
    env.pop("RABBITMQ_ENABLED_PLUGINS", None)
    log = (directory / "server.out").open("wb")
    server = subprocess.Popen(
        [_rabbitmq_bin("rabbitmq-server")], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    uri = f"amqps://guest:guest@localhost:{port}/{VHOST}"

    def accepts_tls() -> bool:
        if server.poll() is not None:
            raise AssertionError(f"the TLS broker exited; see {directory / 'server.out'}")
        try:
            amqp.connect(uri, "tls-probe").close()
        except Exception:
            return False
        return True

    try:
        wait_for(accepts_tls, timeout=90, what="the throwaway AMQPS broker")
        yield Tenant(f"amqps://localhost:{port}/{VHOST}", VHOST, prefix, passwords)
    finally:
        subprocess.run(
            [_rabbitmq_bin("rabbitmqctl"), "-n", node, "stop"],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


#: A throwaway cluster: the superuser `postgres`, trusted (TLS-only by pg_hba), no fsync.
INITDB_OPTIONS = ("-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")


def _postgres_bin(name: str) -> str:
    """The server binaries (Debian keeps them out of PATH, per major version)."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is not installed (apt-get install postgresql)")
    return path


@contextmanager
def tls_postgres(authority: Authority) -> Iterator[str]:
    """A PostgreSQL cluster of its own that accepts only TLS connections (hostssl), with the
    server certificate of `authority`; yields its URL without TLS parameters (the caller adds
    `sslmode`/`sslrootcert`). The machine's own server is not touched.

    PostgreSQL refuses to run as root, so the cluster runs as the `postgres` user, in a
    directory that user owns."""
    directory = Path(tempfile.mkdtemp(prefix="carepath-pg-tls-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    port = free_port()
    server: subprocess.Popen[bytes] | None = None
    data = directory / "data"
    try:
        shutil.copy(authority.server_cert, directory / "server.pem")
        shutil.copy(authority.server_key, directory / "server.key")
        (directory / "server.key").chmod(0o600)
        if as_postgres:
            shutil.chown(directory, "postgres")
            for child in directory.iterdir():
                shutil.chown(child, "postgres")
        subprocess.run(
            [*as_postgres, _postgres_bin("initdb"), "-D", str(data), *INITDB_OPTIONS],
            check=True,
            capture_output=True,
        )
        (data / "pg_hba.conf").write_text("hostssl all all 127.0.0.1/32 trust\n")
        server = subprocess.Popen(
            [
                *as_postgres,
                *(_postgres_bin("postgres"), "-D", str(data), "-p", str(port)),
                *("-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={directory}"),
                *("-c", "ssl=on", "-c", f"ssl_cert_file={directory / 'server.pem'}"),
                *("-c", f"ssl_key_file={directory / 'server.key'}", "-c", "fsync=off"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(directory / "server.log").open("wb"),
        )
        url = f"postgresql://postgres@localhost:{port}/postgres"
        verified = f"{url}?sslmode=verify-full&sslrootcert={authority.ca}"

        def accepting() -> bool:
            if server is not None and server.poll() is not None:
                raise AssertionError(f"the TLS PostgreSQL exited; see {directory / 'server.log'}")
            try:
                psycopg.connect(verified, connect_timeout=2).close()
            except psycopg.OperationalError:
                return False
            return True

        wait_for(accepting, timeout=60, what="the throwaway TLS PostgreSQL")
        yield url
    finally:
        if server is not None:
            subprocess.run(
                [*as_postgres, _postgres_bin("pg_ctl"), "stop", "-m", "fast", "-D", f"{data}"],
                capture_output=True,
                timeout=60,
                check=False,
            )
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(directory, ignore_errors=True)
