"""A subscription on the broker: the vendor's own quorum queue and dead-letter queue, bound
from the vendor exchange `carepath.vendor` (never from an internal `<service>.events`
exchange), and a broker user of its own that may read that queue and nothing else.

    queue        vendor.<name>                quorum, delivery limit 10, dead-letters to ↓
    dead letters vendor.<name>.dead-letter    quorum (kept for the operator)
    binding      carepath.vendor → vendor.<name>, routing key vendor.<name>
    user         <prefix>vendor-<name>        configure: none, write: none,
                                              read: ^vendor\\.<name>$

Pausing withdraws the user's read permission and closes its connections: the queue keeps
filling, so resuming (the permission back) delivers everything that came meanwhile. Deleting
removes both queues (and with them the binding) and the user.

Carried out over RabbitMQ's management HTTP API (the `rabbitmq_management` plugin, enabled on
every broker carepath runs on: infra/rabbitmq/enabled_plugins for docker-compose,
infra/ensure-rabbitmq.sh for the local one) as the streams service's own broker administrator
(`shared.config.broker_admin`), so the process that manages subscriptions needs no rabbitmqctl
and no access to the node — it runs in its container as any other. Each step is idempotent
(PUT of a user, permission or queue that exists with the same values changes nothing; a
binding is the same binding; deleting what is gone is not an error), so a command retried
after a failed broker step completes it.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from shared import broker, config
from shared.amqp import QUEUE_ARGUMENTS
from shared.broker import ProvisionError

#: The vendor-facing exchange: carries only the public contract, minimised per subscription,
#: published by the delivery process (services/streams/delivery.py) as the streams user.
VENDOR_EXCHANGE = "carepath.vendor"


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dead-letter"


def queue_arguments(queue: str) -> dict[str, object]:
    """A consumer's quorum queue whose dead letters go to the vendor's own dead-letter queue
    (through the default exchange), not to carepath's."""
    return {
        **QUEUE_ARGUMENTS,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue(queue),
    }


def read_pattern(queue: str) -> str:
    return "^" + queue.replace(".", "\\.").replace("-", "\\-") + "$"


def new_password() -> str:
    """Shown once to the operator, who hands it to the vendor; RabbitMQ keeps only its hash."""
    return secrets.token_urlsafe(24)


class ManagementAPI:
    """RabbitMQ's management HTTP API as one administrator (JSON in and out)."""

    def __init__(self, admin: config.BrokerAdmin, timeout: float = 10.0) -> None:
        self._base = admin.url
        token = base64.b64encode(f"{admin.user}:{admin.password}".encode()).decode()
        self._authorization = f"Basic {token}"
        self._timeout = timeout

    def request(self, method: str, path: str, body: Any = None, *, missing_ok: bool = False) -> Any:
        """One call; ProvisionError when the broker cannot be reached or refuses (a 404 is
        None with `missing_ok`)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self._base + path,
            data=data,
            method=method,
            headers={"Authorization": self._authorization, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:
                text = answer.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and missing_ok:
                return None
            reason = exc.read()[:300].decode(errors="replace")
            raise ProvisionError(
                f"{method} {path.split('/')[2]}: HTTP {exc.code} {reason}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ProvisionError(f"the management API is not reachable: {exc}") from exc
        return json.loads(text) if text.strip() else None


def _q(part: str) -> str:
    """A path segment of the API (the vhost `/` is `%2F`)."""
    return quote(part, safe="")


class VendorBroker:
    """The broker side of subscriptions, on AMQP_URI's vhost and AMQP_USER_PREFIX's users,
    through the management API as BROKER_ADMIN_USER."""

    def __init__(
        self,
        vhost: str | None = None,
        prefix: str | None = None,
        admin: config.BrokerAdmin | None = None,
    ) -> None:
        self.vhost = vhost if vhost is not None else broker.vhost_of(config.amqp_address())
        self.prefix = prefix if prefix is not None else config.amqp_user_prefix()
        self.api = ManagementAPI(admin if admin is not None else config.broker_admin())

    def user(self, name: str) -> str:
        return f"{self.prefix}vendor-{name}"

    def provision(self, name: str, queue: str, password: str, paused: bool = False) -> None:
        """The queue, its dead-letter queue, the binding and the user (its password set anew)."""
        vhost, api = _q(self.vhost), self.api
        dlq = dead_letter_queue(queue)
        api.request("PUT", f"/api/users/{_q(self.user(name))}", {"password": password, "tags": ""})
        self._permissions(name, "" if paused else read_pattern(queue))
        api.request(
            "PUT", f"/api/queues/{vhost}/{_q(dlq)}",
            {"durable": True, "auto_delete": False, "arguments": {"x-queue-type": "quorum"}},
        )  # fmt: skip
        api.request(
            "PUT", f"/api/queues/{vhost}/{_q(queue)}",
            {"durable": True, "auto_delete": False, "arguments": queue_arguments(queue)},
        )  # fmt: skip
        api.request(
            "POST", f"/api/bindings/{vhost}/e/{_q(VENDOR_EXCHANGE)}/q/{_q(queue)}",
            {"routing_key": queue, "arguments": {}},
        )  # fmt: skip

    def pause(self, name: str) -> None:
        """No more reading: the permission goes, and open connections are closed (RabbitMQ
        checks permissions when a consumer starts, not for each message)."""
        self._permissions(name, "")
        self.api.request(
            "DELETE", f"/api/connections/username/{_q(self.user(name))}", missing_ok=True
        )

    def resume(self, name: str, queue: str) -> None:
        self._permissions(name, read_pattern(queue))

    def delete(self, name: str, queue: str) -> None:
        """Both queues (the binding goes with the queue) and the user; what is gone already
        is not an error."""
        for q in (queue, dead_letter_queue(queue)):
            self.api.request("DELETE", f"/api/queues/{_q(self.vhost)}/{_q(q)}", missing_ok=True)
        self.api.request("DELETE", f"/api/users/{_q(self.user(name))}", missing_ok=True)

    def _permissions(self, name: str, read: str) -> None:
        self.api.request(
            "PUT", f"/api/permissions/{_q(self.vhost)}/{_q(self.user(name))}",
            {"configure": "", "write": "", "read": read},
        )  # fmt: skip
