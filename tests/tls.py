"""TLS for tests: a throwaway certificate authority (trustme) with server and client
certificates on disk, a throwaway RabbitMQ node that listens only for AMQPS and a throwaway
PostgreSQL cluster that accepts only TLS (both from tests/throwaway.py).

The machine's own broker has no TLS listener and is never reconfigured or restarted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

from shared.broker import Tenant
from shared.config import ClientTLS, ServerTLS
from tests.throwaway import PostgresCluster, RabbitNode

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


#: The vhost of the throwaway AMQPS broker.
VHOST = "carepath-tls"


@contextmanager
def tls_broker(authority: Authority, directory: Path) -> Iterator[Tenant]:
    """A RabbitMQ node of its own (tests/throwaway.py) that speaks only AMQPS and requires a
    client certificate signed by `authority`, provisioned from the definitions as every broker
    is (a vhost with the service users); yields that tenant."""
    node = RabbitNode(directory, VHOST, tls=authority)
    try:
        node.start(timeout=90)
        yield node.tenant
    finally:
        node.stop()


@contextmanager
def tls_postgres(authority: Authority) -> Iterator[str]:
    """A PostgreSQL cluster of its own (tests/throwaway.py) that accepts only TLS connections
    (hostssl), with the server certificate of `authority`; yields its URL without TLS
    parameters (the caller adds `sslmode`/`sslrootcert`). The machine's own server is not
    touched."""
    cluster = PostgresCluster(tls=authority)
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.remove()
