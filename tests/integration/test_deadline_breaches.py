"""Breached deadlines are announced once each, as DeadlineBreached on `pathway.events`."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.engine import Engine

from services.pathway import deadlines
from services.pathway.projector import project
from services.referrals.application import ReferralsApplication
from services.referrals.domain import CancerPathway, Priority
from shared.apprec import AppRecStatus
from shared.broker import Tenant
from shared.domain import CommandContext
from shared.events import Envelope
from shared.events.pathway import DeadlineBreached
from shared.ids import FNR_SYSTEM
from shared.outbox import iter_all_envelopes
from tests.conftest import GP, HOSPITAL
from tests.processes import nameko
from tests.support import bind_test_queue, drain_queue, make_fnr, unique_queue, wait_for

NOW = datetime.now(UTC)
PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(3, 3, 33, 100)}


def overdue_referral(received_days_ago: int, accepted: bool = False) -> list[Envelope]:
    app = ReferralsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})

    def c(actor, cid, days):  # type: ignore[no-untyped-def]
        return CommandContext(cid, NOW - timedelta(days=days), actor, "c")

    r = app.send_referral(
        c(GP, "s", received_days_ago + 1),
        PATIENT,
        HOSPITAL.her_id,
        "x",
        Priority.URGENT,
        CancerPathway.COLORECTAL,
    )
    app.record_receipt(c(HOSPITAL, "r", received_days_ago), r.id, AppRecStatus.OK, [])
    if accepted:
        app.accept(c(HOSPITAL, "a", 0), r.id, date.today() + timedelta(days=3))
    return list(iter_all_envelopes("referrals", app))


def test_each_breach_is_announced_once(engine: Engine) -> None:
    with engine.begin() as conn:
        project(conn, overdue_referral(received_days_ago=30))
    published: list[Envelope] = []
    assert deadlines.announce_breaches(engine, published.extend) == 2
    breaches = [e.payload(DeadlineBreached) for e in published]
    assert {b.kind for b in breaches} == {
        "REFERRAL_ASSESSMENT",
        "CANCER_FIRST_APPOINTMENT",
    }
    assert all(e.event_type == "DeadlineBreached" and e.patient == PATIENT for e in published)
    assert all(b.waiting_on.her_id == HOSPITAL.her_id for b in breaches)
    assert deadlines.announce_breaches(engine, published.extend) == 0
    assert len(published) == 2


def test_a_deadline_not_yet_passed_is_not_a_breach(engine: Engine) -> None:
    with engine.begin() as conn:
        project(conn, overdue_referral(received_days_ago=1))
    assert deadlines.announce_breaches(engine, [].extend) == 0


def test_the_reactions_process_dispatches_breaches_to_the_pathway_exchange(
    engine: Engine, backend: dict[str, str], broker: Tenant, amqp_uri: str
) -> None:
    """The real process (`python -m shared.run_reactions`) with the timer, the read model and
    the broker, as the pathway's broker user."""
    with engine.begin() as conn:
        project(conn, overdue_referral(received_days_ago=30))
    queue = unique_queue("pathway.breaches")
    bind_test_queue(amqp_uri, "pathway.events", queue)
    urls = {"pathway": backend["pathway"]}
    interval = {"PATHWAY_DEADLINE_INTERVAL": "0.2"}
    bodies: list[bytes] = []
    with nameko("services.pathway.reactions", broker, urls, env=interval):
        wait_for(
            lambda: bodies.extend(drain_queue(amqp_uri, queue, delete=False)) or len(bodies) >= 2,
            timeout=60,
            what="two DeadlineBreached messages",
        )
        time.sleep(1.0)  # several more timer ticks: nothing is announced twice
        bodies.extend(drain_queue(amqp_uri, queue))
    envelopes = [Envelope.from_json(b) for b in bodies]
    assert {e.event_type for e in envelopes} == {"DeadlineBreached"}
    assert len({e.event_id for e in envelopes}) == len(envelopes) == 2
