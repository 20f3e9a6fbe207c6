"""Configuration from the environment, read once per process at its composition root.

Every setting has a development default that matches `make run` (SQLite under var/, local
RabbitMQ); production sets the variables (see docker-compose.yml).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

#: Where the broker is (scheme, host, port, vhost). No credentials: each process connects as
#: its own service's broker user (`amqp_uri(service)`).
DEFAULT_AMQP_URI = "amqp://127.0.0.1:5672/%2F"
#: Broker user names are `<prefix><service>` (infra/rabbitmq/definitions.json uses this one;
#: a test session provisions users of its own under a random prefix).
DEFAULT_AMQP_USER_PREFIX = "carepath-"
#: The services with a broker user: the relays' publishers and the consumers.
BROKER_SERVICES = (
    "referrals",
    "admissions",
    "discharges",
    "medications",
    "registry",
    "municipal",
    "correspondence",
    "pathway",
)
#: Every broker user provisioned with the services (`<prefix><account>`): the services', the
#: dead-letter operator's (`python -m shared.deadletters`), which publishes no events, and the
#: vendor delivery's (`python -m services.streams deliver`), which reads every service's events
#: and writes only the vendor exchange.
BROKER_ACCOUNTS = (*BROKER_SERVICES, "deadletters", "streams")

#: Default gRPC address of each service; `<SERVICE>_GRPC_ADDRESS` overrides.
DEFAULT_GRPC_ADDRESSES = {
    "pathway": "127.0.0.1:50050",
    "referrals": "127.0.0.1:50051",
    "admissions": "127.0.0.1:50052",
    "discharges": "127.0.0.1:50053",
    "medications": "127.0.0.1:50054",
    "registry": "127.0.0.1:50055",
    "streams": "127.0.0.1:50056",
    "municipal": "127.0.0.1:50058",
    # The vendors' event stream (grpc.aio: `python -m services.streams stream`).
    "streams_stream": "127.0.0.1:50057",
    "correspondence": "127.0.0.1:50059",
}


class ConfigError(Exception):
    """A setting is missing or unsafe: the process says so in one line and exits."""


def private_dir(path: Path) -> Path:
    """`path` as a directory only its owner can enter (0700), created if missing: it holds
    health data (SQLite stores) and keys."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
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
    """Random passwords of the development broker users, created once (never fixed); an account
    added since the file was written gets one then."""
    path = var_dir() / "amqp-passwords.json"
    passwords: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if any(a not in passwords for a in BROKER_ACCOUNTS):
        for account in BROKER_ACCOUNTS:
            passwords.setdefault(account, secrets.token_urlsafe(24))
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(passwords, f)
        tmp.replace(path)
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


def var_dir() -> Path:
    """Directory for the embedded default's files (SQLite stores, the development issuer),
    created 0700."""
    return private_dir(Path(os.environ.get("CAREPATH_VAR_DIR", "var")).resolve())


def _file(variable: str) -> Path | None:
    """The file an environment variable names; it must exist (a typo is not plaintext)."""
    value = os.environ.get(variable, "").strip()
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"{variable}: no such file: {value}")
    return path


def _pair(cert_variable: str, key_variable: str) -> tuple[Path, Path] | None:
    cert, key = _file(cert_variable), _file(key_variable)
    if (cert is None) != (key is None):
        raise ConfigError(f"{cert_variable} and {key_variable} go together: set both")
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
            raise ConfigError(
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
            raise ConfigError("GRPC_TLS_CLIENT_CERT_FILE needs GRPC_TLS_CA_FILE")
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
            raise ConfigError("AMQP_TLS_* files are set but AMQP_URI is not amqps://")
        return None
    return ClientTLS(ca=ca, cert=pair[0] if pair else None, key=pair[1] if pair else None)


def database_url(service: str) -> str:
    """`<SERVICE>_DATABASE_URL`, else a SQLite file under var/."""
    url = os.environ.get(f"{service.upper()}_DATABASE_URL")
    return url or f"sqlite:///{var_dir() / f'{service}.sqlite'}"


def grpc_address(service: str) -> str:
    return os.environ.get(f"{service.upper()}_GRPC_ADDRESS", DEFAULT_GRPC_ADDRESSES[service])


#: How long a stopping gRPC server lets running calls finish (`GRPC_GRACE_SECONDS`). Shorter
#: than the stop timeout of whoever stops it (compose's `stop_grace_period`, 10 s by default),
#: so calls end and the process exits before it is killed.
DEFAULT_GRPC_GRACE_SECONDS = 5.0


def grpc_grace_seconds() -> float:
    value = os.environ.get("GRPC_GRACE_SECONDS", "").strip()
    if not value:
        return DEFAULT_GRPC_GRACE_SECONDS
    try:
        grace = float(value)
    except ValueError:
        raise ConfigError(f"GRPC_GRACE_SECONDS: not a number of seconds: {value!r}") from None
    if not 0 <= grace <= 300:
        raise ConfigError(f"GRPC_GRACE_SECONDS: between 0 and 300 seconds, not {value}")
    return grace


#: Default HTTP address of each web process; `<SERVICE>_HTTP_ADDRESS` overrides.
DEFAULT_HTTP_ADDRESSES = {"viewer": "127.0.0.1:8080"}


def http_address(service: str) -> str:
    return os.environ.get(f"{service.upper()}_HTTP_ADDRESS", DEFAULT_HTTP_ADDRESSES[service])


def ops_port() -> int | None:
    """`OPS_PORT`: where the process serves /metrics, /healthz and /readyz (shared/ops.py);
    unset or empty: nowhere."""
    text = os.environ.get("OPS_PORT", "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) > 65535:
        raise ConfigError(f"OPS_PORT must be a port number, not {text!r}")
    return int(text)


def ops_host() -> str:
    """`OPS_HOST` (default 127.0.0.1, loopback only): the address the ops endpoint listens on;
    compose sets 0.0.0.0 so that Prometheus in another container can scrape it."""
    return os.environ.get("OPS_HOST", "").strip() or "127.0.0.1"


def ops_check_interval() -> float:
    """`OPS_CHECK_INTERVAL_SECONDS` (default 2): how often a process checks its dependencies
    for readiness and gRPC health."""
    text = os.environ.get("OPS_CHECK_INTERVAL_SECONDS", "").strip()
    value = float(text) if text else 2.0
    if value <= 0:
        raise ConfigError(f"OPS_CHECK_INTERVAL_SECONDS must be positive, not {text!r}")
    return value


def dev_issuer_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """`CAREPATH_DEV_ISSUER=1` (set by `make run` and `make token`, never by default): the local
    development issuer under var/dev-issuer signs and is trusted."""
    return (os.environ if environ is None else environ).get("CAREPATH_DEV_ISSUER") == "1"


def test_data_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """`CAREPATH_TEST_DATA=allow` (set by `make run` and the tests, never by default): the
    process accepts the synthetic identifiers of the national test population (fødselsnumre
    and D-numbers with month + 80, shared/ids.py). Unset, as in production, they are refused
    with the field named. Any other value is a mistake the process says in one line."""
    value = (os.environ if environ is None else environ).get("CAREPATH_TEST_DATA", "").strip()
    if value not in ("", "allow"):
        raise ConfigError(f"CAREPATH_TEST_DATA must be 'allow' or unset, not {value!r}")
    return value == "allow"


@dataclass(frozen=True)
class TokenSettings:
    """Whom access tokens must come from and how they are checked (shared/auth.py)."""

    #: The `iss` tokens must carry (HelseID: https://helseid-sts.nhn.no).
    issuer: str
    #: The `aud` tokens must carry: carepath's API name at the issuer.
    audience: str
    #: The issuer's public keys: a JWKS file, or the issuer's JWKS URL (exactly one).
    jwks_file: Path | None
    jwks_url: str | None
    #: A scope every token must have, when set.
    scope: str | None
    #: Where revoked token ids are kept (shared/revocation.py).
    revocations_url: str
    max_lifetime: int
    leeway: int
    revocation_refresh: float
    #: The organisation directory (orgnr → HER-id and kind, shared/directory.py): the access
    #: facts' database (`ACCESS_DATABASE_URL`, by default the pathway read model's).
    directory_url: str = ""
    directory_refresh: float = 10.0


def token_settings(environ: Mapping[str, str] | None = None) -> TokenSettings:
    """The token issuer from `CAREPATH_TOKEN_ISSUER`, `CAREPATH_TOKEN_AUDIENCE`, and
    `CAREPATH_JWKS_FILE` or `CAREPATH_JWKS_URL` (optional `CAREPATH_TOKEN_SCOPE`); with
    `CAREPATH_DEV_ISSUER=1` and none of them set, the local development issuer (created under
    var/dev-issuer on first use). Anything missing raises ConfigError: no process trusts
    tokens from an issuer nobody configured. Lifetime cap, leeway and revocation bound are
    rules.toml `[tokens]`."""
    from shared import rules

    env = os.environ if environ is None else environ
    limits = rules.rules()["tokens"]
    names = (
        "CAREPATH_TOKEN_ISSUER",
        "CAREPATH_TOKEN_AUDIENCE",
        "CAREPATH_JWKS_FILE",
        "CAREPATH_JWKS_URL",
    )
    configured = {name: env.get(name, "").strip() for name in names}
    scope = env.get("CAREPATH_TOKEN_SCOPE", "").strip() or None
    if dev_issuer_enabled(env) and not any(configured.values()):
        from shared.issuer import open_issuer

        dev = open_issuer(var_dir() / "dev-issuer")
        configured.update(
            CAREPATH_TOKEN_ISSUER=dev.iss,
            CAREPATH_TOKEN_AUDIENCE=dev.aud,
            CAREPATH_JWKS_FILE=str(dev.jwks_path),
        )
        scope = dev.scope
    missing = [n for n in names[:2] if not configured[n]]
    if missing:
        raise ConfigError(
            f"no token issuer configured: set {' and '.join(missing)} and CAREPATH_JWKS_FILE "
            "or CAREPATH_JWKS_URL (development: CAREPATH_DEV_ISSUER=1, as `make run` does)"
        )
    jwks_file, jwks_url = configured["CAREPATH_JWKS_FILE"], configured["CAREPATH_JWKS_URL"]
    if bool(jwks_file) == bool(jwks_url):
        raise ConfigError("set exactly one of CAREPATH_JWKS_FILE and CAREPATH_JWKS_URL")
    if jwks_url and not jwks_url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise ConfigError("CAREPATH_JWKS_URL must be https:// (http only on loopback)")
    return TokenSettings(
        issuer=configured["CAREPATH_TOKEN_ISSUER"],
        audience=configured["CAREPATH_TOKEN_AUDIENCE"],
        jwks_file=Path(jwks_file) if jwks_file else None,
        jwks_url=jwks_url or None,
        scope=scope,
        revocations_url=env.get("REVOCATIONS_DATABASE_URL")
        or f"sqlite:///{var_dir() / 'revocations.sqlite'}",
        max_lifetime=int(limits["max_lifetime_seconds"]),
        leeway=int(limits["leeway_seconds"]),
        revocation_refresh=float(limits["revocation_refresh_seconds"]),
        directory_url=access_database_url(env),
        directory_refresh=float(limits["directory_refresh_seconds"]),
    )


def log_level() -> str:
    return os.environ.get("LOG_LEVEL", "INFO").upper()


def log_format() -> str:
    """`LOG_FORMAT`: `json` (the default: one object per line, for a log collector) or `text`
    (one readable line; `make run` uses it)."""
    value = os.environ.get("LOG_FORMAT", "json").strip().lower()
    if value not in ("json", "text"):
        raise ConfigError(f"LOG_FORMAT must be json or text, not {value!r}")
    return value


#: eventsourcing.postgres with the URL's libpq parameters (shared.store.PostgresFactory).
POSTGRES_FACTORY = "shared.store:PostgresFactory"
#: eventsourcing.sqlite, its tables created one process at a time (shared.store.SQLiteFactory).
SQLITE_FACTORY = "shared.store:SQLiteFactory"
#: The environment key that carries them (a URL query string) to that factory.
POSTGRES_PARAMETERS = "POSTGRES_LIBPQ_PARAMETERS"
#: The environment key that carries the pools' idle time to that factory.
POSTGRES_MAX_IDLE = "POSTGRES_POOL_MAX_IDLE"


@dataclass(frozen=True)
class Pool:
    """A process's connections to one PostgreSQL database (SQLite has no pool to size):
    `idle` kept open while nothing happens, at most `size` under load. A connection beyond
    `idle` that stays unused is closed after `pool_max_idle()` seconds (one per period)."""

    idle: int
    size: int


#: Every PostgreSQL pool of every process, by what it is for: the connection budget
#: (docs/operations.md adds them up: at most 30 held by the idle system, under 60 under load
#: with a rebuild beside it). `DB_POOL_<NAME>=idle:size` (e.g. `DB_POOL_STORE_SERVE=1:6`)
#: overrides one.
POOLS: dict[str, Pool] = {
    # Event stores (eventsourcing). A gRPC server loads aggregates on several threads but
    # saves one batch at a time (shared.store.GroupCommit).
    "store-serve": Pool(1, 4),
    # A relay reads one batch at a time, and polls: its one connection is always in use.
    "store-relay": Pool(1, 1),
    # A reaction process acts on another service's store a message at a time.
    "store-reactions": Pool(0, 2),
    # One-off commands: migrate, the registry's import, the stores a rebuild reads.
    "store-tool": Pool(0, 1),
    # The pathway read model (SQLAlchemy): PathwayService's readers, the projector's one
    # writer, the deadline timer, and one-off commands (migrate, rebuild).
    "read-model-serve": Pool(1, 6),
    "read-model-project": Pool(0, 1),
    "read-model-reactions": Pool(0, 1),
    "read-model-tool": Pool(0, 1),
    # Per gRPC server: the access policy's facts (one query per call), the audit log (its
    # writer has a connection of its own besides; the pool serves the emergency-access
    # reads), the revocation list (read at most once a second).
    "facts": Pool(0, 2),
    "audit": Pool(0, 1),
    "revocations": Pool(0, 1),
    # Per token verifier: the organisation directory its HelseID orgnr mapping reads.
    "directory": Pool(0, 1),
    # A relay's position (written after each published batch), discharges' known stays.
    "positions": Pool(0, 1),
    "known-stays": Pool(0, 2),
    # The vendor delivery (services/streams): its stream log (one writer), the access facts it
    # filters by (one query per served organisation and batch).
    "stream-log": Pool(0, 1),
    # The event stream server (services/streams/stream.py): its worker threads read the
    # stream log (a page per open stream at a time, and the head watcher) — as many threads
    # as connections; the access facts and the audit log have their pools above.
    "stream-serve": Pool(1, 4),
}


def pool(name: str) -> Pool:
    """The pool `name` of POOLS, or `DB_POOL_<NAME>=idle:size` when set."""
    text = os.environ.get(f"DB_POOL_{name.upper().replace('-', '_')}", "").strip()
    if not text:
        return POOLS[name]
    idle, _, size = text.partition(":")
    try:
        configured = Pool(int(idle), int(size))
    except ValueError:
        raise ConfigError(f"DB_POOL_{name.upper()}: expected idle:size, not {text!r}") from None
    if configured.idle < 0 or configured.size < max(1, configured.idle):
        raise ConfigError(f"DB_POOL_{name.upper()}: need 0 <= idle <= size and size >= 1")
    return configured


def pool_max_idle() -> float:
    """`DB_POOL_MAX_IDLE_SECONDS` (default 30): how long a connection beyond a pool's `idle`
    may stay unused before it is closed."""
    return float(os.environ.get("DB_POOL_MAX_IDLE_SECONDS", "30"))


@dataclass(frozen=True)
class StoreSettings:
    """Settings of one service's event store, as the eventsourcing library wants them, with
    the PostgreSQL pool of the process's role (`POOLS`)."""

    url: str
    pool: Pool = POOLS["store-serve"]

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
                return {"PERSISTENCE_MODULE": SQLITE_FACTORY, "SQLITE_DBNAME": ":memory:"}
            return {
                "PERSISTENCE_MODULE": SQLITE_FACTORY,
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
                "POSTGRES_POOL_SIZE": str(self.pool.idle),
                "POSTGRES_MAX_OVERFLOW": str(self.pool.size - self.pool.idle),
                # No check before each use (it cost a quarter of the store's save rate): a
                # session the server ended fails one unit of work, which is retried (the relay,
                # the reactions: shared.retry; a command: UNAVAILABLE, the client's retry
                # policy) on a new connection; psycopg's pool drops the broken one.
                "POSTGRES_CONNECT_TIMEOUT": "5",  # as every pool's (shared.sql.CONNECT_TIMEOUT)
                POSTGRES_MAX_IDLE: str(pool_max_idle()),
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


def access_database_url(environ: Mapping[str, str] | None = None) -> str:
    """Where the access policy reads care relationships, blocks and the organisation directory:
    `ACCESS_DATABASE_URL`, else the pathway read model's database (its projector keeps them)."""
    env = os.environ if environ is None else environ
    return (
        env.get("ACCESS_DATABASE_URL")
        or env.get("PATHWAY_DATABASE_URL")
        or f"sqlite:///{var_dir() / 'pathway.sqlite'}"
    )


def nameko_amqp_ssl(uri: str) -> dict[str, str] | None:
    """kombu's TLS options (nameko's `AMQP_SSL`) for the same broker TLS as `amqp_tls`: the CA,
    the client certificate, and the host name the broker's certificate must carry (py-amqp's
    client context requires a verified chain); None for a plain `amqp://` URI."""
    tls = amqp_tls(uri)
    if tls is None:
        return None
    options = {
        "ca_certs": tls.ca,
        "certfile": tls.cert,
        "keyfile": tls.key,
        "server_hostname": urlsplit(uri).hostname,
    }
    return {k: str(v) for k, v in options.items() if v is not None}


#: The event stream's defaults (`STREAM_HEARTBEAT_SECONDS`, `STREAM_PAGE_SIZE`,
#: `STREAM_POLL_SECONDS`, `STREAM_MAX_OPEN`): a heartbeat after 15 s without an event; pages
#: of 200 events (what one stream holds in the server at most); the stream log's head looked
#: at ten times a second (one query per process, whatever the streams; a live event waits at
#: most this after the delivery numbered it); at most 5,000 open streams per process (more
#: are answered RESOURCE_EXHAUSTED).
STREAM_DEFAULTS = {"heartbeat": 15.0, "page": 200, "poll": 0.1, "max_open": 5000}


def _positive(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {text!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be more than 0")
    return value


def stream_heartbeat_seconds() -> float:
    return _positive("STREAM_HEARTBEAT_SECONDS", STREAM_DEFAULTS["heartbeat"])


def stream_page_size() -> int:
    return int(_positive("STREAM_PAGE_SIZE", STREAM_DEFAULTS["page"]))


def stream_poll_seconds() -> float:
    return _positive("STREAM_POLL_SECONDS", STREAM_DEFAULTS["poll"])


def stream_max_open() -> int:
    return int(_positive("STREAM_MAX_OPEN", STREAM_DEFAULTS["max_open"]))


#: carepath's own operating organisation (its HER-id in the directory, as the register
#: adapter's): the default of OPERATOR_HER_IDS.
DEFAULT_OPERATOR_HER_IDS = ("112374",)


def operator_her_ids(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """OPERATOR_HER_IDS: the HER-ids (comma-separated) of the organisations whose tokens'
    OPERATOR role counts — carepath's own. A token issuer that wrongly gives another
    organisation (a vendor) the role does not make it an operator (the access policy,
    `shared.access.policy.check_caller`)."""
    env = os.environ if environ is None else environ
    text = env.get("OPERATOR_HER_IDS", "").strip()
    if not text:
        return frozenset(DEFAULT_OPERATOR_HER_IDS)
    her_ids = frozenset(part.strip() for part in text.split(",") if part.strip())
    bad = sorted(h for h in her_ids if not h.isdigit())
    if bad:
        raise ConfigError(f"OPERATOR_HER_IDS must be HER-ids (digits), not {', '.join(bad)}")
    return her_ids


@dataclass(frozen=True)
class BrokerAdmin:
    """The RabbitMQ management HTTP API and the administrator the streams service provisions
    vendor subscriptions with (services/streams/provisioning.py): BROKER_ADMIN_URL (default
    http://127.0.0.1:15672), BROKER_ADMIN_USER and BROKER_ADMIN_PASSWORD (or
    BROKER_ADMIN_PASSWORD_FILE: a mounted secret). Given to the streams service's admin
    process only. With none set: the local broker's `guest`, which RabbitMQ lets in from
    loopback only (make run, the tests)."""

    url: str
    user: str
    password: str = field(repr=False)


def broker_admin(environ: Mapping[str, str] | None = None) -> BrokerAdmin:
    env = os.environ if environ is None else environ
    url = env.get("BROKER_ADMIN_URL", "").strip() or "http://127.0.0.1:15672"
    if urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(f"BROKER_ADMIN_URL must be an http(s) URL, not {url!r}")
    password = env.get("BROKER_ADMIN_PASSWORD", "")
    secret = env.get("BROKER_ADMIN_PASSWORD_FILE", "").strip()
    if secret:
        password = Path(secret).read_text().strip()
    user = env.get("BROKER_ADMIN_USER", "").strip()
    if not user:
        user, password = "guest", password or "guest"
    if not password:
        raise ConfigError("BROKER_ADMIN_USER is set: set BROKER_ADMIN_PASSWORD(_FILE) too")
    return BrokerAdmin(url.rstrip("/"), user, password)
