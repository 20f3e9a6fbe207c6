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

Carried out the way shared/broker.py provisions the broker: `rabbitmqctl import_definitions`
(and `set_permissions`, `delete_queue`, `delete_user`) on the local node, so the process that
manages subscriptions runs where rabbitmqctl reaches the node with its admin rights. Each
step is idempotent: a command retried after a failed broker step completes it.
"""

from __future__ import annotations

import secrets

from shared import broker, config
from shared.amqp import QUEUE_ARGUMENTS

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


class VendorBroker:
    """The broker side of subscriptions, on AMQP_URI's vhost and AMQP_USER_PREFIX's users."""

    def __init__(self, vhost: str | None = None, prefix: str | None = None) -> None:
        self.vhost = vhost if vhost is not None else broker.vhost_of(config.amqp_address())
        self.prefix = prefix if prefix is not None else config.amqp_user_prefix()

    def user(self, name: str) -> str:
        return f"{self.prefix}vendor-{name}"

    def provision(self, name: str, queue: str, password: str, paused: bool = False) -> None:
        """The queue, its dead-letter queue, the binding and the user (its password set anew)."""
        dlq = dead_letter_queue(queue)
        read = "" if paused else read_pattern(queue)
        broker.import_definitions(
            {
                "users": [{"name": self.user(name), "password": password, "tags": ""}],
                "permissions": [
                    {"user": self.user(name), "vhost": self.vhost,
                     "configure": "", "write": "", "read": read},
                ],
                "queues": [
                    {"name": queue, "vhost": self.vhost, "durable": True, "auto_delete": False,
                     "arguments": queue_arguments(queue)},
                    {"name": dlq, "vhost": self.vhost, "durable": True, "auto_delete": False,
                     "arguments": {"x-queue-type": "quorum"}},
                ],
                "bindings": [
                    {"source": VENDOR_EXCHANGE, "vhost": self.vhost, "destination": queue,
                     "destination_type": "queue", "routing_key": queue, "arguments": {}},
                ],
            }
        )  # fmt: skip

    def pause(self, name: str) -> None:
        """No more reading: the permission goes, and open connections are closed (RabbitMQ
        checks permissions when a consumer starts, not for each message)."""
        self._permissions(name, "")
        broker.ctl("close_all_user_connections", self.user(name), "subscription paused by carepath")

    def resume(self, name: str, queue: str) -> None:
        self._permissions(name, read_pattern(queue))

    def delete(self, name: str, queue: str) -> None:
        """Both queues (the binding goes with the queue) and the user; what is gone already
        is not an error."""
        for q in (queue, dead_letter_queue(queue)):
            try:
                broker.ctl("delete_queue", "-p", self.vhost, q)
            except broker.ProvisionError as exc:
                if "not_found" not in str(exc).lower() and "not found" not in str(exc).lower():
                    raise
        try:
            broker.ctl("delete_user", self.user(name))
        except broker.ProvisionError as exc:
            if "no_such_user" not in str(exc).lower() and "not exist" not in str(exc).lower():
                raise

    def _permissions(self, name: str, read: str) -> None:
        broker.ctl("set_permissions", "-p", self.vhost, self.user(name), "", "", read)
