"""Properties, on the real broker: whatever a message's envelope fields and data hold, the
projector and a reaction never stop, and each message is either applied or dead-lettered —
never both, never neither. Many messages go per broker round (one hypothesis example)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from services.discharges.known_stays import KnownStays
from shared.broker import Tenant
from shared.config import StoreSettings
from tests.processes import nameko
from tests.support import wait_for
from tests.wire import (
    DROP,
    PATHS,
    any_message,
    dead_letters,
    empty_dead_letters,
    projecting,
    publish,
    stored,
)

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
ABSURD = st.sampled_from(
    [
        2**70,
        -1,
        0,
        "",
        "x" * 100_000,
        "9999-12-31T23:59:59+00:00",
        "-0001-01-01T00:00:00+00:00",
        "2026-02-30T10:00:00+00:00",
        [],
        {},
        "PatientTeleported",
        "referrals",
        2,
    ]
)
MUTATIONS = st.lists(
    st.tuples(st.sampled_from(PATHS), st.one_of(st.just(DROP), JSON, ABSURD)), max_size=3
)
#: One broker round: some well-formed messages among many broken ones.
ROUND = st.lists(MUTATIONS, min_size=5, max_size=30)
ROUNDS = settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def publish_round(broker: Tenant, round_: list[list[tuple[str, Any]]]) -> list[tuple[bytes, str]]:
    messages = [any_message(m) for m in round_]
    publish(broker, "admissions", [("PatientAdmitted", body) for body, _ in messages])
    return messages


def test_the_projector_projects_or_dead_letters_every_message_and_never_stops(
    engine: Engine, broker: Tenant, amqp_uri: str
) -> None:
    empty_dead_letters(amqp_uri)
    outcomes = {"projected": 0, "parked": 0}
    with projecting(engine, broker, amqp_uri) as projector:

        @ROUNDS
        @given(ROUND)
        def every_message_projected_or_parked(round_: list[list[tuple[str, Any]]]) -> None:
            messages = publish_round(broker, round_)
            parked: list[bytes] = []
            ids = [event_id for _, event_id in messages]

            def accounted() -> bool:
                parked.extend(body for _, body in dead_letters(amqp_uri))
                done = stored(engine, ids)
                return all(body in parked or eid in done for body, eid in messages)

            wait_for(accounted, what="every message projected or dead-lettered")
            done = stored(engine, ids)
            assert not [eid for body, eid in messages if body in parked and eid in done]
            assert projector.ready.is_set()
            outcomes["projected"] += len(done)
            outcomes["parked"] += len(messages) - len(done)

        every_message_projected_or_parked()
    assert outcomes["projected"] and outcomes["parked"], outcomes


@pytest.fixture
def stay_view(broker: Tenant, tmp_path: Any) -> Iterator[KnownStays]:
    url = f"sqlite:///{tmp_path}/discharges.sqlite"
    stays = KnownStays(StoreSettings(url).sqlalchemy_url())
    try:
        with nameko("services.discharges.reactions", broker, {"discharges": url}):
            yield stays
    finally:
        stays.close()


def test_a_reaction_applies_or_dead_letters_every_message_and_never_stops(
    stay_view: KnownStays, broker: Tenant, amqp_uri: str
) -> None:
    empty_dead_letters(amqp_uri)
    outcomes = {"applied": 0, "parked": 0}

    @ROUNDS
    @given(ROUND)
    def every_message_applied_or_parked(round_: list[list[tuple[str, Any]]]) -> None:
        messages = publish_round(broker, round_)
        parked: list[bytes] = []

        def known(event_id: str) -> bool:
            return stay_view.get(UUID(event_id.split(":")[0])) is not None

        def accounted() -> bool:
            parked.extend(body for _, body in dead_letters(amqp_uri))
            return all(body in parked or known(eid) for body, eid in messages)

        wait_for(accounted, what="every message applied or dead-lettered")
        applied = [eid for _, eid in messages if known(eid)]
        assert not [eid for body, eid in messages if body in parked and known(eid)]
        outcomes["applied"] += len(applied)
        outcomes["parked"] += len(messages) - len(applied)

    every_message_applied_or_parked()
    assert outcomes["applied"] and outcomes["parked"], outcomes
