"""The operator's look at the dead letters, and the way back for them (docs/operations.md,
"Dead letters"):

    python -m shared.deadletters list
    python -m shared.deadletters replay [--queue Q] (--event-id ID | --all)
    python -m shared.deadletters discard [--queue Q] (--event-id ID | --all) --yes

Every consumer (the projector and each reaction) dead-letters to the one queue
`carepath.dead-letter`; each letter names its consumer's queue in `x-carepath-consumer`
(`shared.amqp.dead_letter_headers`), and one the broker dead-lettered itself (a message returned
more often than its queue's delivery limit) in `x-first-death-queue`. `list` groups the letters
by that queue and prints, per letter, event id, type, source, reason, attempts and time, never
the payload (it holds personal data). `replay` republishes a letter into its consumer's queue
through the default exchange, so only that consumer gets it again (the others have applied it),
with its origin in the headers (the consumer checks the original sender again,
`shared.amqp.origin_of`) and a fresh count of attempts; it is removed from the dead-letter
queue only once the broker has confirmed the republish (a crash between the two replays it
twice: every consumer is idempotent on the event id). A letter the relay parked before it was
ever published names no consumer and cannot be replayed. Nor can a letter that its consumer's
service did not park: every service may write to carepath.dlx, so a letter's headers (the
original sender among them) are believed only when its `user_id`, which RabbitMQ vouches for, is
a broker user that may read the consumer's queue (`consumer_users`, from the definitions); a
letter the broker dead-lettered itself is the original message, its own `user_id` intact.
`discard` removes letters for good and wants `--yes`.

It connects as the broker user `<AMQP_USER_PREFIX>deadletters` (password: AMQP_PASSWORD, or the
development one in var/), which may read only carepath.dead-letter and publish only to the
default exchange (infra/rabbitmq/definitions.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError

from shared import amqp, config
from shared.broker import load_definitions, service_of_user


@dataclass
class Letter:
    """One dead letter as the operator sees it (no payload), and what replaying it needs."""

    delivery_tag: int
    consumer: str | None
    event_id: str
    event_type: str
    source: str
    reason: str
    attempts: str
    at: str
    body: bytes = field(repr=False)
    properties: pika.BasicProperties = field(repr=False)
    origin: amqp.Origin | None = field(repr=False, default=None)
    #: Dead-lettered by the broker itself (x-death): the original message, not a consumer's.
    by_broker: bool = field(repr=False, default=False)

    def line(self) -> str:
        return "\t".join(
            (self.event_id, self.event_type, self.source, self.attempts, self.at, self.reason)
        )


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _body_fields(body: bytes) -> dict[str, str]:
    """event_id, event_type and source from a body that may not even be JSON (only these three
    names are read; nothing else of the payload)."""
    try:
        raw = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    return {k: raw[k] for k in ("event_id", "event_type", "source") if isinstance(raw.get(k), str)}


def letter(delivery_tag: int, props: pika.BasicProperties, body: bytes) -> Letter:
    """What a message on carepath.dead-letter says about itself."""
    headers = dict(props.headers or {})
    deaths = headers.get("x-death") or [{}]
    death = deaths[0] if isinstance(deaths, list) and deaths else {}
    from_body = _body_fields(body)
    if amqp.REASON_HEADER in headers:  # dead-lettered by a consumer or a relay
        consumer = _text(headers.get(amqp.CONSUMER_HEADER)) or None
        exchange = _text(headers.get(amqp.ORIGINAL_EXCHANGE))
        routing_key = _text(headers.get(amqp.ORIGINAL_ROUTING_KEY))
        user_id = _text(headers.get(amqp.ORIGINAL_USER_ID)) or None
        reason = _text(headers.get(amqp.REASON_HEADER))
        attempts = _text(headers.get(amqp.ATTEMPTS_HEADER))
        at = _text(headers.get(amqp.AT_HEADER))
    else:  # dead-lettered by the broker (x-death): the original message, properties and all
        consumer = _text(headers.get("x-first-death-queue")) or None
        exchange = _text(death.get("exchange"))
        keys = death.get("routing-keys") or [""]
        routing_key = _text(keys[0])
        user_id = props.user_id
        reason = f"dead-lettered by the broker: {_text(death.get('reason'))}"
        attempts = _text(headers.get("x-delivery-count") or death.get("count"))
        at = _text(death.get("time"))
    source = from_body.get("source") or (amqp.service_of(exchange) or exchange)
    return Letter(
        delivery_tag=delivery_tag,
        consumer=consumer,
        event_id=_text(props.message_id) or from_body.get("event_id", "?"),
        event_type=from_body.get("event_type") or routing_key or "?",
        source=source or "?",
        reason=reason,
        attempts=attempts or "?",
        at=at or "?",
        body=body,
        properties=props,
        origin=amqp.Origin(exchange, routing_key, user_id) if exchange else None,
        by_broker=amqp.REASON_HEADER not in headers,
    )


def consumer_users(queue: str) -> set[str]:
    """The broker users that may read `queue` (its consumer's service), by the definitions."""
    return {
        config.amqp_user(account)
        for p in load_definitions()["permissions"]
        if (account := service_of_user(p["user"])) and p["read"] and re.search(p["read"], queue)
    }


def refusal(one: Letter) -> str | None:
    """Why `one` must not be replayed, or None."""
    if one.consumer is None or one.origin is None:
        return (
            "parked before it was published (no consumer); the relay of its service publishes "
            "it again only from its store"
        )
    if not one.by_broker and one.properties.user_id not in consumer_users(one.consumer):
        parked_by = one.properties.user_id or "no user_id"
        return f"parked by {parked_by}, not by the service that consumes {one.consumer}"
    return None


def take_all(channel: BlockingChannel) -> list[Letter]:
    """Every letter on the queue, unacknowledged: held by this channel until acked (removed)
    or the channel closes (returned to the queue)."""
    letters: list[Letter] = []
    while True:
        method, props, body = channel.basic_get(amqp.DEAD_LETTER_QUEUE, auto_ack=False)
        if method is None:
            return letters
        letters.append(letter(method.delivery_tag, props, body))


def by_consumer(letters: Sequence[Letter]) -> dict[str, list[Letter]]:
    grouped: dict[str, list[Letter]] = {}
    for one in letters:
        grouped.setdefault(one.consumer or "(no consumer: parked by a relay)", []).append(one)
    return dict(sorted(grouped.items()))


def print_list(letters: Sequence[Letter], out: TextIO) -> None:
    print(f"{amqp.DEAD_LETTER_QUEUE}: {len(letters)} dead letters", file=out)
    for consumer, group in by_consumer(letters).items():
        print(f"\n{consumer}: {len(group)}", file=out)
        print("  event_id\ttype\tsource\tattempts\ttime\treason", file=out)
        for one in group:
            print(f"  {one.line()}", file=out)


def select(letters: Sequence[Letter], queue: str | None, event_id: str | None) -> list[Letter]:
    return [
        one
        for one in letters
        if (queue is None or one.consumer == queue)
        and (event_id is None or one.event_id == event_id)
    ]


def replay_one(channel: BlockingChannel, one: Letter, own_user: str) -> None:
    """Republish into the consumer's queue (confirmed, mandatory) and then remove it from the
    dead-letter queue. Raises AMQPError (UnroutableError: the consumer's queue is not there;
    NackError) and leaves the letter where it is."""
    assert one.consumer is not None and one.origin is not None
    props = one.properties
    headers = amqp.dead_letter_headers(
        f"replayed: {one.reason}", one.origin, consumer=one.consumer, attempts=0
    )
    channel.basic_publish(
        "",
        one.consumer,
        one.body,
        pika.BasicProperties(
            content_type=props.content_type or "application/json",
            content_encoding=props.content_encoding,
            message_id=props.message_id or one.event_id,
            correlation_id=props.correlation_id,
            type=props.type,
            timestamp=props.timestamp,
            delivery_mode=2,
            user_id=own_user,
            headers=headers,
        ),
        mandatory=True,
    )
    channel.basic_ack(one.delivery_tag)


def run(
    command: str,
    uri: str,
    *,
    queue: str | None = None,
    event_id: str | None = None,
    every: bool = False,
    yes: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """One command against the broker at `uri` (connected as the dead-letter operator's user);
    the exit status."""
    connection = amqp.connect(uri, "carepath-deadletters")
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        letters = take_all(channel)
        if command == "list":
            print_list(select(letters, queue, None), out)
            return 0
        chosen = select(letters, queue, event_id)
        if not every and event_id is None:
            print("name the letters: --event-id ID or --all", file=out)
            return 2
        if not chosen:
            print("no dead letter matches", file=out)
            return 1
        if command == "discard":
            if not yes:
                print(f"would discard {len(chosen)} dead letters; add --yes to do so", file=out)
                return 2
            for one in chosen:
                channel.basic_ack(one.delivery_tag)
                print(f"discarded {one.event_id} ({one.consumer})", file=out)
            return 0
        return _replay(channel, chosen, pika.URLParameters(uri).credentials.username, out)
    finally:
        with contextlib.suppress(AMQPError, OSError):
            connection.close()  # what was not acked goes back to the dead-letter queue


def _replay(channel: BlockingChannel, chosen: Sequence[Letter], user: str, out: TextIO) -> int:
    failed = 0
    for one in chosen:
        why = refusal(one)
        if why is not None:
            print(f"not replayed {one.event_id}: {why}", file=out)
            failed += 1
            continue
        try:
            replay_one(channel, one, user)
        except AMQPError as exc:
            print(f"not replayed {one.event_id} to {one.consumer}: {exc!r}", file=out)
            failed += 1
            if not channel.is_open:
                break
            continue
        print(f"replayed {one.event_id} to {one.consumer}", file=out)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m shared.deadletters",
        description="List, replay or discard the dead letters of every consumer (the projector "
        "and each reaction), as the broker user <AMQP_USER_PREFIX>deadletters.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="per consumer queue: count and each letter (no payload)")
    for name, what in (
        ("replay", "republish into the consumer's own queue, then remove"),
        ("discard", "remove for good"),
    ):
        sub = commands.add_parser(name, help=what)
        sub.add_argument("--queue", help="only the letters of this consumer's queue")
        chosen = sub.add_mutually_exclusive_group(required=True)
        chosen.add_argument("--event-id", help="only this event")
        chosen.add_argument("--all", action="store_true", help="every letter (of --queue)")
        if name == "discard":
            sub.add_argument("--yes", action="store_true", help="confirm: they are lost")
    args = parser.parse_args(argv)
    status = run(
        args.command,
        config.amqp_uri(amqp.DEADLETTERS_USER),
        queue=getattr(args, "queue", None),
        event_id=getattr(args, "event_id", None),
        every=getattr(args, "all", False),
        yes=getattr(args, "yes", False),
    )
    raise SystemExit(status)


if __name__ == "__main__":
    main()
