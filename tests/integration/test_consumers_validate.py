"""Consumers validate before they act, on the real broker: every class of malformed message is
dead-lettered with its reason and the next good message is still projected (the projector)
and reacted to (the discharges' view of the stays); a message the fold cannot take is
dead-lettered too, and the rest of its batch is projected."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.discharges.known_stays import KnownStays
from services.pathway import readmodel
from shared.broker import Tenant
from shared.config import StoreSettings
from shared.events import Envelope, downcast
from shared.events import referrals as rf
from shared.events.admissions import MAX_WARD
from tests.processes import nameko
from tests.support import wait_for
from tests.wire import (
    MALFORMATIONS,
    Malformation,
    admitted,
    dead_letters,
    empty_dead_letters,
    envelope,
    malformed,
    projecting,
    publish,
    stored,
)


@pytest.mark.parametrize("m", MALFORMATIONS, ids=lambda m: m.name)
def test_the_projector_dead_letters_a_malformed_message_and_projects_the_next(
    m: Malformation, engine: Engine, broker: Tenant, amqp_uri: str
) -> None:
    empty_dead_letters(amqp_uri)
    good = envelope(admitted())
    with projecting(engine, broker, amqp_uri):
        publish(
            broker,
            "admissions",
            [("PatientAdmitted", malformed(m)), ("PatientAdmitted", good.to_json())],
        )
        wait_for(lambda: stored(engine, [good.event_id]), what="the good admission projected")
    ((reason, _body),) = dead_letters(amqp_uri)
    assert m.reason in reason


def test_a_ward_as_long_as_the_contract_allows_is_projected(
    engine: Engine, broker: Tenant, amqp_uri: str
) -> None:
    """The read model holds every value the contract lets through (no dead letter for a
    well-formed admission because a column is shorter than its bound)."""
    empty_dead_letters(amqp_uri)
    longest = envelope(admitted(ward="W" * MAX_WARD))
    with projecting(engine, broker, amqp_uri):
        publish(broker, "admissions", [("PatientAdmitted", longest.to_json())])
        wait_for(lambda: stored(engine, [longest.event_id]), what="the admission projected")
    assert dead_letters(amqp_uri) == []


def test_a_milestone_the_fold_cannot_take_is_dead_lettered_and_the_rest_projected(
    engine: Engine, broker: Tenant, amqp_uri: str
) -> None:
    """Surgery has no standard time in the lymphoma pathway: the message is well-formed, but
    the fold refuses it. Only it is parked; the batch around it is projected."""
    empty_dead_letters(amqp_uri)
    referral = str(uuid.uuid4())
    gp = {"her_id": "8134021", "org_kind": "GP", "hpr": "9144900"}
    history = [
        envelope(
            rf.ReferralSent(
                sender_her_id="8134021",
                receiver_her_id="59",
                reason="Forstørrede lymfeknuter",
                priority="URGENT",
                cancer_pathway="LYMPHOMA",
            ),
            aggregate_id=referral,
            actor=gp,
        ),
        envelope(
            rf.ReferralReceiptRecorded(receiver_her_id="59", status="OK", errors=[]),
            aggregate_id=referral,
            version=2,
        ),
        envelope(
            rf.CancerPathwayMilestoneReached(milestone="FIRST_APPOINTMENT", treatment=None),
            aggregate_id=referral,
            version=3,
        ),
    ]
    impossible = envelope(
        rf.CancerPathwayMilestoneReached(milestone="INVESTIGATION_COMPLETED", treatment="SURGERY"),
        aggregate_id=referral,
        version=4,
    )
    after = envelope(admitted())
    with projecting(engine, broker, amqp_uri) as projector:
        publish(broker, "referrals", [(e.event_type, e.to_json()) for e in [*history, impossible]])
        publish(broker, "admissions", [("PatientAdmitted", after.to_json())])
        ids = [e.event_id for e in [*history, after]]
        wait_for(lambda: stored(engine, ids) == set(ids), what="the rest projected")
        wait_for(lambda: projector.projected == len(ids), what="the batch finished")
    assert not stored(engine, [impossible.event_id])
    ((reason, body),) = dead_letters(amqp_uri)
    assert json.loads(body)["event_id"] == impossible.event_id
    assert "not projected: MissingRule" in reason and "surgery" in reason


@pytest.fixture(scope="module")
def stay_view(broker: Tenant, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnownStays]:
    """The discharges' reaction that keeps its view of the stays, running for the module."""
    url = f"sqlite:///{tmp_path_factory.mktemp('discharges')}/discharges.sqlite"
    stays = KnownStays(StoreSettings(url).sqlalchemy_url())
    try:
        with nameko("services.discharges.reactions", broker, {"discharges": url}):
            yield stays
    finally:
        stays.close()


@pytest.mark.parametrize("m", MALFORMATIONS, ids=lambda m: m.name)
def test_a_reaction_dead_letters_a_malformed_message_and_reacts_to_the_next(
    m: Malformation, stay_view: KnownStays, broker: Tenant, amqp_uri: str
) -> None:
    empty_dead_letters(amqp_uri)
    good = envelope(admitted())
    publish(
        broker,
        "admissions",
        [("PatientAdmitted", malformed(m)), ("PatientAdmitted", good.to_json())],
    )
    wait_for(lambda: stay_view.get(UUID(good.aggregate_id)), what="the good stay known")
    ((reason, _body),) = wait_for(lambda: dead_letters(amqp_uri), what="the malformed one parked")
    assert m.reason in reason


def _as_version_1(sent: Envelope) -> bytes:
    """A PatientAdmitted as the admissions relay published it before version 2."""
    return json.dumps(downcast(json.loads(sent.to_json()), 1)).encode()


def test_a_patient_admitted_of_version_1_still_queued_is_projected_as_version_2(
    engine: Engine, broker: Tenant, amqp_uri: str
) -> None:
    """Published before the upgrade, waiting in the projector's queue: upcast, not
    dead-lettered; the read model keeps it as version 2."""
    empty_dead_letters(amqp_uri)
    sent = envelope(admitted())
    with projecting(engine, broker, amqp_uri):
        publish(broker, "admissions", [("PatientAdmitted", _as_version_1(sent))])
        wait_for(lambda: stored(engine, [sent.event_id]), what="the admission projected")
    assert dead_letters(amqp_uri) == []
    events = readmodel.events
    with engine.connect() as conn:
        kept = conn.execute(
            sa.select(events.c.envelope).where(events.c.event_id == sent.event_id)
        ).scalar_one()
    assert json.loads(kept)["schema_version"] == 2
    assert Envelope.from_stored(kept) == sent


def test_a_patient_admitted_of_version_1_still_queued_is_reacted_to_as_version_2(
    stay_view: KnownStays, broker: Tenant, amqp_uri: str
) -> None:
    """The discharges' reaction reads the home municipality by its version 2 name."""
    empty_dead_letters(amqp_uri)
    sent = envelope(admitted())
    publish(broker, "admissions", [("PatientAdmitted", _as_version_1(sent))])
    known = wait_for(lambda: stay_view.get(UUID(sent.aggregate_id)), what="the stay known")
    assert known.municipality_her_id == "4201"
    assert dead_letters(amqp_uri) == []
