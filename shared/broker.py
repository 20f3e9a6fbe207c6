"""Provisioning of the broker from infra/rabbitmq/definitions.json: the vhost, one user per
service with least privilege, every exchange, queue and binding.

One file, three uses: production RabbitMQ imports it at boot (docker-compose.yml renders the
passwords into it), `make run` provisions the local broker with it (`python -m shared.broker
provision`), and each test session provisions its own vhost and users with it. So no event
depends on which process started first, and every process runs as the user it will run as in
production.

The file names its users `carepath-<service>` on vhost `/`; rendering swaps in another vhost,
another user prefix (`AMQP_USER_PREFIX`, e.g. a test session's random one) and the passwords.
Users that belong to no service (the operator's administrator) are left to the operator.
Provisioning runs `rabbitmqctl import_definitions`, so it needs the local node and its admin
rights (root, or the rabbitmq user).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from pika.adapters.blocking_connection import BlockingChannel

from shared import config

DEFINITIONS = Path(__file__).resolve().parents[1] / "infra" / "rabbitmq" / "definitions.json"
#: The user prefix and vhost definitions.json is written with.
FILE_PREFIX = config.DEFAULT_AMQP_USER_PREFIX
FILE_VHOST = "/"


class ProvisionError(Exception):
    """The broker could not be provisioned (no rabbitmqctl, or it refused)."""


def load_definitions(path: Path = DEFINITIONS) -> dict[str, Any]:
    definitions: dict[str, Any] = json.loads(path.read_text())
    return definitions


def service_of_user(name: str) -> str | None:
    """The account a user of the file is (a service, or the dead-letter operator's
    `deadletters`); None for the operator's own users (the administrator)."""
    service = name.removeprefix(FILE_PREFIX)
    return service if service != name and service in config.BROKER_ACCOUNTS else None


def render(
    vhost: str, prefix: str, passwords: Mapping[str, str], path: Path = DEFINITIONS
) -> dict[str, Any]:
    """The definitions for `vhost`, with the accounts' users (`config.BROKER_ACCOUNTS`) named
    `<prefix><account>` and their passwords; the operator's administrator is left out."""
    source = load_definitions(path)

    def user(name: str) -> str:
        service = service_of_user(name)
        assert service is not None
        return f"{prefix}{service}"

    def in_vhost(entity: dict[str, Any]) -> dict[str, Any]:
        return {**entity, "vhost": vhost}

    return {
        "vhosts": [{"name": vhost}],
        "users": [
            {"name": user(u["name"]), "password": passwords[str(service_of_user(u["name"]))],
             "tags": u.get("tags", "")}
            for u in source["users"]
            if service_of_user(u["name"])
        ],
        "permissions": [
            {**in_vhost(p), "user": user(p["user"])}
            for p in source["permissions"]
            if service_of_user(p["user"])
        ],
        "exchanges": [in_vhost(e) for e in source["exchanges"]],
        "queues": [in_vhost(q) for q in source["queues"]],
        "bindings": [in_vhost(b) for b in source["bindings"]],
    }  # fmt: skip


def rabbitmqctl() -> str:
    found = shutil.which("rabbitmqctl") or next(
        (p for p in ("/usr/sbin/rabbitmqctl", "/usr/local/sbin/rabbitmqctl") if Path(p).exists()),
        None,
    )
    if found is None:
        raise ProvisionError(
            "rabbitmqctl not found: provision the broker by importing "
            "infra/rabbitmq/definitions.json there (see README, 'The broker')"
        )
    return found


def _ctl(*args: str) -> subprocess.CompletedProcess[str]:
    """rabbitmqctl; a node whose RabbitMQ app is (re)starting is waited for (up to 2 minutes),
    e.g. while a test of the outbox relay has the broker stopped."""
    command = [rabbitmqctl(), "-q", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 and "app to be running" in done.stderr:
        wait = [rabbitmqctl(), "-q", "await_startup", "--timeout", "120"]
        subprocess.run(wait, capture_output=True, check=False, timeout=150)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ProvisionError(f"rabbitmqctl {args[0]} failed: {done.stderr.strip()[:500]}")
    return done


def ctl(*args: str) -> str:
    """Run one rabbitmqctl command on the local node (its output); raises ProvisionError."""
    return _ctl(*args).stdout


def import_definitions(definitions: Mapping[str, Any]) -> None:
    """Import into the running local node (users, permissions and topology; existing
    entities with the same definition are left as they are)."""
    fd, name = tempfile.mkstemp(prefix="carepath-definitions-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:  # mkstemp: 0600, it holds passwords
            json.dump(definitions, f)
        os.chmod(name, 0o644)  # the node runs as the rabbitmq user and must read it
        _ctl("import_definitions", name)
    finally:
        os.unlink(name)


def provision(
    vhost: str, prefix: str, passwords: Mapping[str, str], replace_mismatched: bool = False
) -> None:
    """Create (or bring up to date) the vhost, the service users and the topology.

    RabbitMQ's import leaves an existing queue as it is, so a queue declared earlier with other
    arguments (a classic `pathway.projector` of an older release) would make its consumer fail
    with PRECONDITION_FAILED: such queues are named in a ProvisionError, or, with
    `replace_mismatched` (development: their messages are lost), deleted and declared anew."""
    definitions = render(vhost, prefix, passwords)
    import_definitions(definitions)
    mismatched = mismatched_queues(vhost, definitions)
    if mismatched and replace_mismatched:
        for name in mismatched:
            _ctl("delete_queue", "-p", vhost, name)
        import_definitions(definitions)
        mismatched = mismatched_queues(vhost, definitions)
    if mismatched:
        raise ProvisionError(
            f"queues on vhost {vhost!r} differ from the definitions (other arguments): "
            f"{', '.join(mismatched)}; delete them (rabbitmqctl delete_queue -p {vhost} NAME) "
            "after moving their messages, or provision with --replace-mismatched"
        )


def mismatched_queues(vhost: str, definitions: Mapping[str, Any]) -> list[str]:
    """The definitions' queues that exist on the broker with other arguments."""
    listed = json.loads(
        _ctl("list_queues", "-p", vhost, "name", "arguments", "--formatter", "json").stdout or "[]"
    )
    actual = {q["name"]: {a[0]: a[2] for a in q["arguments"]} for q in listed}
    return sorted(
        q["name"]
        for q in definitions["queues"]
        if q["name"] in actual and actual[q["name"]] != q["arguments"]
    )


def remove(vhost: str, prefix: str) -> None:
    """Delete the vhost (its queues, exchanges and permissions) and the service users."""
    _ctl("delete_vhost", vhost)
    for service in config.BROKER_ACCOUNTS:
        _ctl("delete_user", f"{prefix}{service}")


@dataclass(frozen=True)
class Tenant:
    """A vhost provisioned from the definitions with service users of its own (a test session,
    a benchmark run): `<prefix><service>` with random passwords."""

    address: str  # amqp://host:port/<vhost>, without credentials
    vhost: str
    prefix: str
    passwords: Mapping[str, str]

    def user(self, service: str) -> str:
        return f"{self.prefix}{service}"

    def uri(self, service: str) -> str:
        """The URI `service`'s processes connect with."""
        return config.with_credentials(self.address, self.user(service), self.passwords[service])

    def env(self, service: str) -> dict[str, str]:
        """The environment of a process of `service` (AMQP_URI, AMQP_USER_PREFIX, AMQP_PASSWORD)."""
        return {
            "AMQP_URI": self.address,
            "AMQP_USER_PREFIX": self.prefix,
            "AMQP_PASSWORD": self.passwords[service],
        }

    def close(self) -> None:
        remove(self.vhost, self.prefix)


def provision_tenant(vhost: str, host: str = "amqp://127.0.0.1:5672") -> Tenant:
    """A fresh vhost with the definitions' topology and users under a random prefix."""
    prefix = f"t{secrets.token_hex(4)}-"
    passwords = {s: secrets.token_urlsafe(18) for s in config.BROKER_ACCOUNTS}
    provision(vhost, prefix, passwords)
    return Tenant(f"{host}/{quote(vhost, safe='')}", vhost, prefix, passwords)


def declare_like(channel: BlockingChannel, template: str, queue: str) -> None:
    """Declare `queue` with the arguments and bindings the definitions give `template` (an
    operator's or a test's admin connection: e.g. another partition of pathway.projector)."""
    definitions = load_definitions()
    (source,) = [q for q in definitions["queues"] if q["name"] == template]
    channel.queue_declare(queue, durable=True, arguments=source["arguments"])
    for binding in definitions["bindings"]:
        if binding["destination"] == template and binding["destination_type"] == "queue":
            channel.queue_bind(queue, binding["source"], routing_key=binding["routing_key"])


def vhost_of(address: str) -> str:
    """The vhost an AMQP URI names (`/` when it names none)."""
    path = urlsplit(address).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m shared.broker",
        description="Provision the local broker (AMQP_URI's vhost) from definitions.json with "
        "the users <AMQP_USER_PREFIX><service> and the development passwords in var/.",
    )
    parser.add_argument("command", choices=["provision"])
    parser.add_argument(
        "--replace-mismatched",
        action="store_true",
        help="delete and declare anew a queue that exists with other arguments (its messages "
        "are lost: development only)",
    )
    args = parser.parse_args(argv)
    vhost = vhost_of(config.amqp_address())
    try:
        provision(
            vhost,
            config.amqp_user_prefix(),
            config.development_amqp_passwords(),
            replace_mismatched=args.replace_mismatched,
        )
    except ProvisionError as exc:
        print(f"carepath: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    print(f"carepath: broker provisioned (vhost {vhost!r}, users {config.amqp_user('*')})")


if __name__ == "__main__":
    main()
