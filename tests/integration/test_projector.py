"""The projector on the real broker: batches, duplicates, reordering and poison messages."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pika
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.admissions.application import AdmissionsApplication
from services.admissions.domain import AdmissionType
from services.municipal.application import MunicipalApplication
from services.municipal.domain import ServiceKind
from services.pathway import migrate, readmodel, views
from services.pathway.folding.medications import medication_list
from services.pathway.projector import project
from services.referrals.application import ReferralsApplication
from services.referrals.domain import CancerPathway, Priority
from services.registry.application import RegistryApplication
from shared.amqp import DEAD_LETTER_QUEUE, BatchPublisher
from shared.apprec import AppRecStatus
from shared.broker import Tenant
from shared.domain import CommandContext
from shared.events import Envelope
from shared.ids import FNR_SYSTEM
from shared.outbox import iter_all_envelopes
from tests.conftest import GP, HOSPITAL, MUNICIPALITY
from tests.support import (
    REGISTER_ADAPTER,
    drain_queue,
    dump_read_model,
    make_fnr,
    projector_queue,
    run_projector,
    wait_for,
)
from tests.unit.test_incremental_fold import KEY, long_history
from tests.unit.test_incremental_fold import T0 as HISTORY_T0

T0 = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)


def many_pathways(patients: int) -> list[Envelope]:
    app = ReferralsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    for p in range(patients):
        patient = {"system": FNR_SYSTEM, "value": make_fnr(1 + p % 28, 1 + p % 12, 50, 300)}

        def c(actor, cid, h, p=p):  # type: ignore[no-untyped-def]
            return CommandContext(f"{p}-{cid}", T0 + timedelta(hours=h + p), actor, "c")

        r = app.send_referral(
            c(GP, "s", 0), patient, HOSPITAL.her_id, "x", Priority.URGENT, CancerPathway.LYMPHOMA
        )
        app.record_receipt(c(HOSPITAL, "r", 1), r.id, AppRecStatus.OK, [])
        if p % 2:
            app.accept(c(HOSPITAL, "a", 30), r.id, date(2026, 3, 1))
        else:
            app.cancel(c(GP, "x", 2), r.id, "Bedring")
    return list(iter_all_envelopes("referrals", app))


def reference(envelopes: list[Envelope], tmp_path: object) -> dict[str, list[tuple[object, ...]]]:
    """The read model from the events applied once each, in order, on SQLite."""
    engine = readmodel.create_engine(f"sqlite:///{tmp_path}/reference.sqlite")
    migrate.upgrade(engine)
    with engine.begin() as conn:
        project(conn, envelopes)
    return dump_read_model(engine)


def events_stored(engine: Engine) -> int:
    return len(dump_read_model(engine)["pathway_events"])


def test_duplicated_and_reordered_delivery_leaves_the_same_read_model(
    engine: Engine, broker: Tenant, amqp_uri: str, tmp_path: object
) -> None:
    envelopes = many_pathways(40)
    expected = reference(envelopes, tmp_path)
    queue = projector_queue("it")
    projector, stop = run_projector(engine, broker, queue)
    try:
        assert projector.ready.wait(30), "the projector consumes its queue"
        rng = random.Random(11)
        delivered = envelopes + rng.sample(envelopes, len(envelopes) // 2)
        rng.shuffle(delivered)
        publisher = BatchPublisher(broker.uri("referrals"), "referrals")
        for i in range(0, len(delivered), 37):  # several batches, interleaved with projection
            publisher.publish(delivered[i : i + 37])
        publisher.close()
        wait_for(lambda: events_stored(engine) == len(envelopes), what="every event projected")
        wait_for(lambda: projector.projected >= len(delivered), what="duplicates consumed")
    finally:
        stop.set()
    assert dump_read_model(engine) == expected
    drain_queue(amqp_uri, queue)


def municipal_pathways(patients: int) -> dict[str, list[Envelope]]:
    """Patients admitted, given a municipal service that starts, and (every other one) dying
    in hospital: each service's events, as its relay publishes them."""
    popo = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    registry = RegistryApplication(env=popo)
    admissions = AdmissionsApplication(env=popo)
    municipal = MunicipalApplication(env=popo)
    for p in range(patients):
        patient = {"system": FNR_SYSTEM, "value": make_fnr(1 + p % 28, 2, 36, 160)}

        def c(actor, cid, h, p=p):  # type: ignore[no-untyped-def]
            return CommandContext(f"m{p}-{cid}", T0 + timedelta(hours=h), actor, "c")

        registry.record_residence(
            c(REGISTER_ADAPTER, "r", 0), patient, MUNICIPALITY.her_id, date(2000, 1, 1)
        )
        service = municipal.decide(
            c(MUNICIPALITY, "d", 1), patient, ServiceKind.HOME_NURSING, date(2026, 2, 3), None
        )
        municipal.start(c(MUNICIPALITY, "s", 25), service.id)
        admissions.admit_patient(
            c(HOSPITAL, "a", 48), patient, "Med 1", AdmissionType.ACUTE, None,
            MUNICIPALITY.her_id, True, True,
        )  # fmt: skip
        if p % 2:
            registry.record_death(c(HOSPITAL, "death", 60), patient)
    return {
        app.name: list(iter_all_envelopes(app.name, app))
        for app in (registry, admissions, municipal)
    }


def test_services_and_deaths_delivered_twice_and_out_of_order_leave_the_same_read_model(
    engine: Engine, broker: Tenant, amqp_uri: str, tmp_path: object
) -> None:
    """A death may arrive before the admission it ends, and a service's start before its
    decision: the read model is the one of the events applied once each, in order."""
    by_source = municipal_pathways(12)
    expected = reference([e for events in by_source.values() for e in events], tmp_path)
    died = [p for p in expected["pathway_patients"] if "DECEASED" in p]
    assert len(died) == 6
    queue = projector_queue("it")
    projector, stop = run_projector(engine, broker, queue)
    total = sum(len(events) for events in by_source.values())
    try:
        assert projector.ready.wait(30), "the projector consumes its queue"
        rng = random.Random(5)
        delivered = 0
        for source, events in by_source.items():
            batch = events + rng.sample(events, len(events) // 2)
            rng.shuffle(batch)
            publisher = BatchPublisher(broker.uri(source), source)
            for i in range(0, len(batch), 9):
                publisher.publish(batch[i : i + 9])
            publisher.close()
            delivered += len(batch)
        wait_for(lambda: events_stored(engine) == total, what="every event projected")
        wait_for(lambda: projector.projected >= delivered, what="duplicates consumed")
    finally:
        stop.set()
    assert dump_read_model(engine) == expected
    drain_queue(amqp_uri, queue)


def test_a_poison_message_goes_to_the_dead_letter_queue_with_its_reason(
    engine: Engine, broker: Tenant, amqp_uri: str
) -> None:
    queue = projector_queue("it")
    projector, stop = run_projector(engine, broker, queue)
    try:
        assert projector.ready.wait(30), "the projector consumes its queue"
        drain_queue(amqp_uri, DEAD_LETTER_QUEUE, delete=False)
        good = many_pathways(1)
        conn = pika.BlockingConnection(pika.URLParameters(broker.uri("referrals")))
        ch = conn.channel()
        sent_by_referrals = pika.BasicProperties(user_id=broker.user("referrals"))
        ch.basic_publish("referrals.events", "ReferralSent", b"{not json", sent_by_referrals)
        for e in good:
            ch.basic_publish("referrals.events", e.event_type, e.to_json(), sent_by_referrals)
        conn.close()
        wait_for(lambda: events_stored(engine) == len(good), what="the good events projected")
    finally:
        stop.set()
    conn = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    ch = conn.channel()
    method, props, body = ch.basic_get(DEAD_LETTER_QUEUE, auto_ack=True)
    conn.close()
    assert method is not None and body == b"{not json"
    assert "not JSON" in props.headers["x-carepath-reason"]
    drain_queue(amqp_uri, queue)


def test_a_long_history_projected_batch_by_batch_equals_one_replay_and_reads_no_history(
    engine: Engine, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A patient with hundreds of events: each batch is added to the stored fold state (the
    patient's history is read again only for the first batch and the late reports), and the
    read model ends exactly as one fold of everything."""
    history = long_history(200)
    expected = reference(history, tmp_path)
    reads: list[int] = []
    histories = readmodel.histories

    def spy(conn: Any, keys: Any, recorded_by: Any = None) -> Any:
        reads.append(len(keys))
        return histories(conn, keys, recorded_by)

    monkeypatch.setattr(readmodel, "histories", spy)
    batches = 0
    for i in range(0, len(history), 9):
        with engine.begin() as conn:
            project(conn, history[i : i + 9])
        batches += 1
    assert dump_read_model(engine) == expected
    assert 1 <= len(reads) <= 6 < batches


def test_get_pathway_reads_rows_only_and_as_of_replays(engine: Engine) -> None:
    """The answer now comes from the read model's rows, the medication list at any clinical
    time too: not one statement touches the event history. `as_of` replays it."""
    history = long_history(40)
    with engine.begin() as conn:
        project(conn, history)
    statements: list[str] = []

    def spy(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", spy)
    try:
        view = views.get_pathway(engine, KEY)
        earlier = views.get_pathway(engine, KEY, medications_at=HISTORY_T0 + timedelta(hours=120))
        assert statements and not [s for s in statements if "pathway_events" in s]
        replayed = views.get_pathway(engine, KEY, as_of=datetime.now(UTC))
        assert [s for s in statements if "pathway_events" in s]
    finally:
        sa.event.remove(engine, "before_cursor_execute", spy)
    assert view is not None and earlier is not None and replayed is not None
    assert view.stays and view.messages and view.payments
    assert (view.stays, view.messages, view.payments) == (
        replayed.stays,
        replayed.messages,
        replayed.payments,
    )
    assert [dict(r) for r in view.timeline] == [dict(r) for r in replayed.timeline]
    assert view.medications == replayed.medications
    assert earlier.medications == medication_list(history, HISTORY_T0 + timedelta(hours=120))
    assert earlier.medications is not None and view.medications is not None
    assert list(earlier.medications.entries) == list(view.medications.entries)
