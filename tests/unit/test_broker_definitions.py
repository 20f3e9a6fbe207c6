"""infra/rabbitmq/definitions.json against the code: every reaction's queue declared, bound and
readable by its own service only, the queues' arguments exactly those the processes declare
with, and the sender check consumers use."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from services.pathway.projector import QUEUE as PROJECTOR_QUEUE
from shared import config, limits
from shared.amqp import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    DEAD_LETTER_QUEUE_ARGUMENTS,
    DEADLETTERS_USER,
    QUEUE_ARGUMENTS,
    RETRY_LEVELS,
    SERVICES,
    retry_exchange,
    sender_refusal,
)
from shared.broker import load_definitions, render
from tests.support import event_queues

#: The reaction modules and the service (broker user) each runs as.
REACTIONS = {
    "services.admissions.reactions": "admissions",
    "services.discharges.reactions": "discharges",
    "services.referrals.reactions": "referrals",
    "services.pathway.reactions": "pathway",
}
DEFINITIONS = load_definitions()


def permissions(service: str) -> dict[str, str]:
    (found,) = [p for p in DEFINITIONS["permissions"] if p["user"] == f"carepath-{service}"]
    return dict(found)


def may(pattern: str, name: str) -> bool:
    """RabbitMQ's reading of a permission pattern ('' grants nothing)."""
    return bool(pattern) and re.search(pattern, name) is not None


def queue(name: str) -> dict[str, Any]:
    (found,) = [q for q in DEFINITIONS["queues"] if q["name"] == name]
    return dict(found)


def bindings_to(name: str) -> set[tuple[str, str]]:
    return {
        (b["source"], b["routing_key"]) for b in DEFINITIONS["bindings"] if b["destination"] == name
    }


@pytest.mark.parametrize("module", REACTIONS)
def test_every_reaction_queue_is_declared_and_bound_to_its_event(module: str) -> None:
    for name in event_queues(module):
        source, event_type = name.removeprefix("evt-").split("--")[0].split("-")
        assert queue(name)["arguments"] == QUEUE_ARGUMENTS
        assert bindings_to(name) == {(f"{source}.events", event_type)}


@pytest.mark.parametrize("module", REACTIONS)
def test_a_reaction_service_may_read_its_own_queues_and_no_other(module: str) -> None:
    service = REACTIONS[module]
    own = set(event_queues(module)) | ({PROJECTOR_QUEUE} if service == "pathway" else set())
    for q in DEFINITIONS["queues"]:
        assert may(permissions(service)["read"], q["name"]) is (q["name"] in own), q["name"]
        assert may(permissions(service)["configure"], q["name"]) is (q["name"] in own)


def test_the_projector_queue_takes_every_services_events_and_only_the_pathway_reads_it() -> None:
    assert queue(PROJECTOR_QUEUE)["arguments"] == QUEUE_ARGUMENTS
    assert bindings_to(PROJECTOR_QUEUE) == {(f"{s}.events", "#") for s in SERVICES}
    readers = [s for s in config.BROKER_SERVICES if may(permissions(s)["read"], PROJECTOR_QUEUE)]
    assert readers == ["pathway"]


def test_each_service_may_write_its_own_exchange_only() -> None:
    exchanges = [e["name"] for e in DEFINITIONS["exchanges"] if e["name"].endswith(".events")]
    assert sorted(exchanges) == sorted(f"{s}.events" for s in config.BROKER_SERVICES)
    for service in config.BROKER_SERVICES:
        writable = [e for e in exchanges if may(permissions(service)["write"], e)]
        assert writable == [f"{service}.events"]


def test_every_service_may_dead_letter_and_no_service_may_read_the_dead_letters() -> None:
    """Consumers park what they cannot apply; every relay parks a stored event that breaks the
    event contract (shared.outbox)."""
    for service in config.BROKER_SERVICES:
        assert may(permissions(service)["write"], DEAD_LETTER_EXCHANGE)
        assert not may(permissions(service)["read"], DEAD_LETTER_QUEUE)


def test_the_dead_letter_queue_does_not_dead_letter_into_itself() -> None:
    assert queue(DEAD_LETTER_QUEUE)["arguments"] == DEAD_LETTER_QUEUE_ARGUMENTS
    assert "x-dead-letter-exchange" not in DEAD_LETTER_QUEUE_ARGUMENTS
    assert bindings_to(DEAD_LETTER_QUEUE) == {(DEAD_LETTER_EXCHANGE, "")}


#: The services that consume (and so may send a failed message to be tried again).
CONSUMERS = sorted(set(REACTIONS.values()))
RETRY_QUEUES = [f"carepath.retry.{n}" for n in range(1, RETRY_LEVELS + 1)]


def test_each_retry_queue_waits_longer_and_returns_a_message_to_its_consumers_queue() -> None:
    """carepath.retry.<n>: a quorum queue behind its own exchange whose TTL sends a message
    back through the default exchange (routing key = the consumer's queue), never dropping it
    (at-least-once dead-lettering)."""
    ttls = []
    for name in RETRY_QUEUES:
        arguments = queue(name)["arguments"]
        assert arguments["x-queue-type"] == "quorum"
        assert arguments["x-dead-letter-exchange"] == ""
        assert "x-dead-letter-routing-key" not in arguments
        assert arguments["x-dead-letter-strategy"] == "at-least-once"
        assert arguments["x-overflow"] == "reject-publish"
        assert bindings_to(name) == {(name, "")}
        ttls.append(arguments["x-message-ttl"])
    assert ttls == sorted(set(ttls))
    assert [retry_exchange(n) for n in (0, 1, 2, 3, 4, 99)] == [
        RETRY_QUEUES[0], *RETRY_QUEUES, RETRY_QUEUES[-1], RETRY_QUEUES[-1],
    ]  # fmt: skip
    assert limits.redelivery_attempts() == 8


def test_only_consumers_may_send_to_be_tried_again_and_only_the_operator_reads_dead_letters() -> (
    None
):
    exchanges = [e["name"] for e in DEFINITIONS["exchanges"]]
    for service in config.BROKER_SERVICES:
        writable = [e for e in exchanges if may(permissions(service)["write"], e)]
        expected = [*RETRY_QUEUES] if service in CONSUMERS else []
        assert [e for e in writable if e.startswith("carepath.retry.")] == expected, service
    operator = permissions(DEADLETTERS_USER)
    assert operator["configure"] == ""
    assert [q["name"] for q in DEFINITIONS["queues"] if may(operator["read"], q["name"])] == [
        DEAD_LETTER_QUEUE
    ]
    # RabbitMQ checks a publish to the default exchange ("") as a write to amq.default.
    assert [e for e in [*exchanges, "amq.default"] if may(operator["write"], e)] == ["amq.default"]


def test_the_redelivery_limit_may_be_set_for_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREPATH_REDELIVERY_ATTEMPTS", "3")
    assert limits.redelivery_attempts() == 3


def test_a_session_gets_its_own_vhost_users_and_passwords_and_no_operator() -> None:
    """Its own service users and dead-letter operator (`deadletters`), never the broker's
    administrator."""
    passwords = {s: f"pw-{s}" for s in config.BROKER_ACCOUNTS}
    rendered = render("carepath-test-1", "t1234-", passwords)
    assert [u["name"] for u in rendered["users"]] == [f"t1234-{s}" for s in config.BROKER_ACCOUNTS]
    assert {u["password"] for u in rendered["users"]} == set(passwords.values())
    assert {p["user"] for p in rendered["permissions"]} == {
        f"t1234-{s}" for s in config.BROKER_ACCOUNTS
    }
    entities = [
        *rendered["permissions"],
        *rendered["exchanges"],
        *rendered["queues"],
        *rendered["bindings"],
    ]
    assert {e["vhost"] for e in entities} == {"carepath-test-1"}
    assert len(rendered["queues"]) == len(DEFINITIONS["queues"])


def test_an_event_is_trusted_only_from_its_services_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AMQP_USER_PREFIX", "carepath-")
    assert sender_refusal("discharges.events", "carepath-discharges") is None
    assert sender_refusal("discharges.events", "carepath-admissions") == (
        "untrusted sender on discharges.events: 'carepath-admissions', "
        "expected user_id 'carepath-discharges'"
    )
    assert sender_refusal("discharges.events", None) == (
        "untrusted sender on discharges.events: no user_id, expected user_id 'carepath-discharges'"
    )
    assert sender_refusal("", "carepath-discharges") == (
        "not from a service's events exchange (exchange '')"
    )
    assert sender_refusal("vendor.events", "carepath-vendor") is not None


def test_a_process_connects_as_its_services_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URI", "amqps://broker.example:5671/carepath?heartbeat=30")
    monkeypatch.setenv("AMQP_USER_PREFIX", "prod-")
    monkeypatch.setenv("AMQP_PASSWORD", "s3cret/with:odd@chars")
    assert config.amqp_user("admissions") == "prod-admissions"
    assert config.amqp_uri("admissions") == (
        "amqps://prod-admissions:s3cret%2Fwith%3Aodd%40chars@broker.example:5671/carepath"
        "?heartbeat=30"
    )


def test_credentials_in_amqp_uri_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/%2F")
    with pytest.raises(ValueError, match="AMQP_URI must not carry a user or password"):
        config.amqp_uri("referrals")


def test_development_passwords_are_random_kept_once_and_private(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("CAREPATH_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("AMQP_PASSWORD", raising=False)
    first = config.development_amqp_passwords()
    assert set(first) == set(config.BROKER_ACCOUNTS)
    assert len(set(first.values())) == len(first)
    assert config.development_amqp_passwords() == first
    assert (tmp_path / "amqp-passwords.json").stat().st_mode & 0o777 == 0o600
    assert config.amqp_password("pathway") == first["pathway"]


def test_an_account_added_later_gets_a_password_and_the_others_keep_theirs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """A var/amqp-passwords.json written before the dead-letter operator's user existed."""
    monkeypatch.setenv("CAREPATH_VAR_DIR", str(tmp_path))
    older = {s: f"pw-{s}" for s in config.BROKER_SERVICES}
    (tmp_path / "amqp-passwords.json").write_text(json.dumps(older))
    passwords = config.development_amqp_passwords()
    assert {s: passwords[s] for s in config.BROKER_SERVICES} == older
    assert passwords[DEADLETTERS_USER] not in older.values()
    assert config.development_amqp_passwords() == passwords
    assert (tmp_path / "amqp-passwords.json").stat().st_mode & 0o777 == 0o600


def test_the_streams_administrator_may_touch_vendor_queues_only() -> None:
    """carepath-streams-admin provisions vendor subscriptions through the management API (its
    administrator tag lets it manage their users); on the vhost it may declare and delete only
    vendor queues and bind them only from carepath.vendor."""
    (admin,) = [p for p in DEFINITIONS["permissions"] if p["user"] == "carepath-streams-admin"]
    exchanges = [e["name"] for e in DEFINITIONS["exchanges"]]
    queues = [q["name"] for q in DEFINITIONS["queues"]]
    assert [q for q in queues if may(admin["configure"], q) or may(admin["write"], q)] == []
    assert may(admin["configure"], "vendor.fjordvik-ehr")
    assert may(admin["configure"], "vendor.fjordvik-ehr.dead-letter")
    assert may(admin["write"], "vendor.fjordvik-ehr")
    assert [e for e in exchanges if may(admin["read"], e)] == ["carepath.vendor"]
    assert "streams-admin" not in {u["name"].split("-", 1)[-1] for u in render("/t", "t-", {
        s: "x" for s in config.BROKER_ACCOUNTS})["users"]}  # fmt: skip


def test_the_streams_administrator_comes_from_its_settings(tmp_path: Any) -> None:
    assert config.broker_admin({}) == config.BrokerAdmin("http://127.0.0.1:15672", "guest", "guest")
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    given = config.broker_admin(
        {
            "BROKER_ADMIN_URL": "http://rabbitmq:15672/",
            "BROKER_ADMIN_USER": "carepath-streams-admin",
            "BROKER_ADMIN_PASSWORD_FILE": str(secret),
        }
    )
    assert given == config.BrokerAdmin("http://rabbitmq:15672", "carepath-streams-admin", "s3cret")
    assert "s3cret" not in repr(given)
    with pytest.raises(config.ConfigError):
        config.broker_admin({"BROKER_ADMIN_USER": "carepath-streams-admin"})
    with pytest.raises(config.ConfigError):
        config.broker_admin({"BROKER_ADMIN_URL": "amqp://rabbitmq"})
