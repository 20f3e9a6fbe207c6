"""Configuration from the environment, read once per process at its composition root.

Every setting has a development default that matches `make run` (SQLite under var/, local
RabbitMQ); production sets the variables (see docker-compose.yml).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/%2F"

#: Default gRPC address of each service; `<SERVICE>_GRPC_ADDRESS` overrides.
DEFAULT_GRPC_ADDRESSES = {
    "pathway": "127.0.0.1:50050",
    "referrals": "127.0.0.1:50051",
    "admissions": "127.0.0.1:50052",
    "discharges": "127.0.0.1:50053",
    "medications": "127.0.0.1:50054",
    "registry": "127.0.0.1:50055",
}


def var_dir() -> Path:
    """Directory for the embedded default's files (SQLite stores, development key)."""
    path = Path(os.environ.get("CAREPATH_VAR_DIR", "var")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def amqp_uri() -> str:
    return os.environ.get("AMQP_URI", DEFAULT_AMQP_URI)


class ConfigurationError(Exception):
    """A setting is missing, half set or inconsistent: the process refuses to start."""


def _file(variable: str) -> Path | None:
    """The file an environment variable names; it must exist (a typo is not plaintext)."""
    value = os.environ.get(variable, "").strip()
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise ConfigurationError(f"{variable}: no such file: {value}")
    return path


def _pair(cert_variable: str, key_variable: str) -> tuple[Path, Path] | None:
    cert, key = _file(cert_variable), _file(key_variable)
    if (cert is None) != (key is None):
        raise ConfigurationError(f"{cert_variable} and {key_variable} go together: set both")
    return (cert, key) if cert and key else None


@dataclass(frozen=True)
class ServerTLS:
    """A gRPC server's TLS: its certificate chain and key (PEM files), and, for mutual TLS,
    the CA that signs the clients' certificates (then a client without one is refused)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


@dataclass(frozen=True)
class ClientTLS:
    """A gRPC or AMQP client's TLS: the CA bundle that verifies the server (None: the system's
    trust store) and, for mutual TLS, the client's certificate chain and key (PEM files)."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


def grpc_server_tls() -> ServerTLS | None:
    """`GRPC_TLS_CERT_FILE` + `GRPC_TLS_KEY_FILE` serve TLS; `GRPC_TLS_CLIENT_CA_FILE` adds
    client authentication (mTLS, a client certificate is required). Unset: plaintext, for
    `make run` on loopback only."""
    pair = _pair("GRPC_TLS_CERT_FILE", "GRPC_TLS_KEY_FILE")
    client_ca = _file("GRPC_TLS_CLIENT_CA_FILE")
    if pair is None:
        if client_ca is not None:
            raise ConfigurationError(
                "GRPC_TLS_CLIENT_CA_FILE needs GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE"
            )
        return None
    return ServerTLS(cert=pair[0], key=pair[1], client_ca=client_ca)


def grpc_client_tls() -> ClientTLS | None:
    """`GRPC_TLS_CA_FILE` (the CA bundle that signs the servers' certificates) turns TLS on
    for gRPC clients; `GRPC_TLS_CLIENT_CERT_FILE` + `GRPC_TLS_CLIENT_KEY_FILE` add the
    client's certificate for servers that require one (mTLS). Unset: plaintext."""
    ca = _file("GRPC_TLS_CA_FILE")
    pair = _pair("GRPC_TLS_CLIENT_CERT_FILE", "GRPC_TLS_CLIENT_KEY_FILE")
    if ca is None:
        if pair is not None:
            raise ConfigurationError("GRPC_TLS_CLIENT_CERT_FILE needs GRPC_TLS_CA_FILE")
        return None
    return ClientTLS(ca=ca, cert=pair[0] if pair else None, key=pair[1] if pair else None)


def amqp_tls(uri: str) -> ClientTLS | None:
    """TLS for the broker connection: an `amqps://` AMQP_URI turns it on, verified against
    `AMQP_TLS_CA_FILE` (else the system's trust store) with the host name checked;
    `AMQP_TLS_CERT_FILE` + `AMQP_TLS_KEY_FILE` add a client certificate. TLS files with a
    plain `amqp://` URI are refused rather than silently ignored."""
    ca = _file("AMQP_TLS_CA_FILE")
    pair = _pair("AMQP_TLS_CERT_FILE", "AMQP_TLS_KEY_FILE")
    if urlsplit(uri).scheme != "amqps":
        if ca is not None or pair is not None:
            raise ConfigurationError("AMQP_TLS_* files are set but AMQP_URI is not amqps://")
        return None
    return ClientTLS(ca=ca, cert=pair[0] if pair else None, key=pair[1] if pair else None)


def database_url(service: str) -> str:
    """`<SERVICE>_DATABASE_URL`, else a SQLite file under var/."""
    url = os.environ.get(f"{service.upper()}_DATABASE_URL")
    return url or f"sqlite:///{var_dir() / f'{service}.sqlite'}"


def grpc_address(service: str) -> str:
    return os.environ.get(f"{service.upper()}_GRPC_ADDRESS", DEFAULT_GRPC_ADDRESSES[service])


#: Default HTTP address of each web process; `<SERVICE>_HTTP_ADDRESS` overrides.
DEFAULT_HTTP_ADDRESSES = {"viewer": "127.0.0.1:8080"}


def http_address(service: str) -> str:
    return os.environ.get(f"{service.upper()}_HTTP_ADDRESS", DEFAULT_HTTP_ADDRESSES[service])


def jwt_secret() -> str:
    """The HS256 key for caller tokens.

    `CAREPATH_JWT_SECRET` in production. In development a random key is created once in
    var/jwt-secret so that the servers and `make token` agree without a well-known default.
    """
    secret = os.environ.get("CAREPATH_JWT_SECRET")
    if secret:
        return secret
    path = var_dir() / "jwt-secret"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_urlsafe(48))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_text().strip()


def log_level() -> str:
    return os.environ.get("LOG_LEVEL", "INFO").upper()


#: eventsourcing.postgres with the URL's libpq parameters (shared.store.PostgresFactory).
POSTGRES_FACTORY = "shared.store:PostgresFactory"
#: The environment key that carries them (a URL query string) to that factory.
POSTGRES_PARAMETERS = "POSTGRES_LIBPQ_PARAMETERS"


@dataclass(frozen=True)
class StoreSettings:
    """Settings of one service's event store, as the eventsourcing library wants them.
    `connections`: the PostgreSQL pool the library opens at start (and as many more under
    load): a server's threads share a few, a relay needs one."""

    url: str
    connections: int = 8

    def eventsourcing_env(self, service: str) -> dict[str, str]:
        """Translate a database URL into eventsourcing's environment variables.

        One persistence module per database: `eventsourcing.sqlite` or `eventsourcing.postgres`
        (never `eventsourcing_sqlalchemy` beside them: their tables clash). A PostgreSQL URL's
        query (`?sslmode=verify-full&sslrootcert=/path/ca.pem`, any libpq parameter) reaches
        psycopg through `shared.store.PostgresFactory`, as it reaches SQLAlchemy in the URL.
        """
        parts = urlsplit(self.url)
        scheme = parts.scheme.split("+")[0]
        if scheme == "sqlite":
            path = self.url.split("sqlite:///", 1)[1] if "sqlite:///" in self.url else ""
            if not path or path == ":memory:":
                return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": ":memory:"}
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": path,
                "SQLITE_LOCK_TIMEOUT": "10",
            }
        if scheme in ("postgresql", "postgres"):
            env = {
                "PERSISTENCE_MODULE": POSTGRES_FACTORY,
                "POSTGRES_DBNAME": parts.path.lstrip("/"),
                "POSTGRES_HOST": parts.hostname or "127.0.0.1",
                "POSTGRES_PORT": str(parts.port or 5432),
                "POSTGRES_USER": unquote(parts.username or "postgres"),
                "POSTGRES_PASSWORD": unquote(parts.password or ""),
                "POSTGRES_POOL_SIZE": str(self.connections),
                "POSTGRES_MAX_OVERFLOW": str(self.connections),
            }
            if parts.query:  # sslmode=verify-full&sslrootcert=... and other libpq parameters
                env[POSTGRES_PARAMETERS] = parts.query
            schema = os.environ.get(f"{service.upper()}_DATABASE_SCHEMA")
            if schema:
                env["POSTGRES_SCHEMA"] = schema
            return env
        raise ValueError(f"unsupported database URL scheme {parts.scheme!r} for {service}")

    def relay_position_url(self) -> str:
        """Where the outbox relay keeps its position (SQLAlchemy URL).

        PostgreSQL: the store's own database. SQLite allows one writer per file, so the relay
        gets a small file of its own beside the store; otherwise every position update would
        queue behind (and hold up) the commands being written."""
        if self.url.startswith("sqlite:///") and ":memory:" not in self.url:
            return f"{self.url.removesuffix('.sqlite')}-relay.sqlite"
        return self.sqlalchemy_url()

    def sqlalchemy_url(self) -> str:
        """The same database for SQLAlchemy (psycopg 3 driver for PostgreSQL)."""
        if self.url.startswith(("postgresql://", "postgres://")):
            return "postgresql+psycopg://" + self.url.split("://", 1)[1]
        return self.url


def access_database_url() -> str:
    """Where the access policy reads care relationships and blocks: `ACCESS_DATABASE_URL`,
    else the pathway read model's database (its projector keeps them)."""
    return os.environ.get("ACCESS_DATABASE_URL") or database_url("pathway")


def nameko_amqp_ssl(uri: str) -> str | None:
    """The `AMQP_SSL` value infra/nameko.yml hands to kombu for the same broker TLS as
    `amqp_tls` (a YAML flow mapping: CA, client certificate, and the host name that the
    broker's certificate must carry; py-amqp's client context requires a verified chain);
    None for a plain `amqp://` URI."""
    tls = amqp_tls(uri)
    if tls is None:
        return None
    options = {
        "ca_certs": tls.ca,
        "certfile": tls.cert,
        "keyfile": tls.key,
        "server_hostname": urlsplit(uri).hostname,
    }
    return "{" + ", ".join(f"{k}: '{v}'" for k, v in options.items() if v is not None) + "}"


if __name__ == "__main__":
    # `python -m shared.config nameko-ssl`: print AMQP_SSL for the nameko processes.
    import sys

    if sys.argv[1:] != ["nameko-ssl"]:
        sys.exit("usage: python -m shared.config nameko-ssl")
    print(nameko_amqp_ssl(amqp_uri()) or "")
