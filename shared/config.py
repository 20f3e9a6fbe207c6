"""Configuration from the environment, read once per process at its composition root.

Every setting has a development default that matches `make run` (SQLite under var/, local
RabbitMQ); production sets the variables (see docker-compose.yml).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

#: Where the broker is (scheme, host, port, vhost). No credentials: each process connects as
#: its own service's broker user (`amqp_uri(service)`).
DEFAULT_AMQP_URI = "amqp://127.0.0.1:5672/%2F"
#: Broker user names are `<prefix><service>` (infra/rabbitmq/definitions.json uses this one;
#: a test session provisions users of its own under a random prefix).
DEFAULT_AMQP_USER_PREFIX = "carepath-"
#: The services with a broker user: the relays' publishers and the consumers.
BROKER_SERVICES = ("referrals", "admissions", "discharges", "medications", "registry", "pathway")

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


def amqp_address() -> str:
    """`AMQP_URI`: the broker's address and vhost, without user or password."""
    address = os.environ.get("AMQP_URI", DEFAULT_AMQP_URI)
    if urlsplit(address).username is not None:
        raise ValueError(
            "AMQP_URI must not carry a user or password: every process connects as its "
            "service's broker user (AMQP_USER_PREFIX, AMQP_PASSWORD)"
        )
    return address


def amqp_user_prefix() -> str:
    return os.environ.get("AMQP_USER_PREFIX", DEFAULT_AMQP_USER_PREFIX)


def amqp_user(service: str) -> str:
    """The broker user `service` publishes and consumes as; consumers accept an event from
    `<service>.events` only when its `user_id` is this user."""
    return f"{amqp_user_prefix()}{service}"


def amqp_password(service: str) -> str:
    """`AMQP_PASSWORD` (the password of this process's service user) in production. In
    development every service's password is created once in var/amqp-passwords.json (0600),
    where `python -m shared.broker provision` reads them for the local broker."""
    password = os.environ.get("AMQP_PASSWORD")
    if password:
        return password
    return development_amqp_passwords()[service]


def development_amqp_passwords() -> dict[str, str]:
    """Random passwords of the development broker users, created once (never fixed)."""
    path = var_dir() / "amqp-passwords.json"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({s: secrets.token_urlsafe(24) for s in BROKER_SERVICES}, f)
        tmp.replace(path)
    passwords: dict[str, str] = json.loads(path.read_text())
    return passwords


def with_credentials(address: str, user: str, password: str) -> str:
    """The AMQP URI of `address` that logs in as `user`."""
    parts = urlsplit(address)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def amqp_uri(service: str) -> str:
    """The URI this process of `service` connects to the broker with, as its own user."""
    return with_credentials(amqp_address(), amqp_user(service), amqp_password(service))


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
        (never `eventsourcing_sqlalchemy` beside them: their tables clash).
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
                "PERSISTENCE_MODULE": "eventsourcing.postgres",
                "POSTGRES_DBNAME": parts.path.lstrip("/"),
                "POSTGRES_HOST": parts.hostname or "127.0.0.1",
                "POSTGRES_PORT": str(parts.port or 5432),
                "POSTGRES_USER": unquote(parts.username or "postgres"),
                "POSTGRES_PASSWORD": unquote(parts.password or ""),
                "POSTGRES_POOL_SIZE": str(self.connections),
                "POSTGRES_MAX_OVERFLOW": str(self.connections),
            }
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
