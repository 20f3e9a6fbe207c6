"""The correspondence service's outbox relay and the pathway projector on the real broker: a
Forespørsel, its receipt and the GP's Medisinske opplysninger reach `correspondence.events` as
public envelopes, and the projector folds them into the read model (messages, tasks)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.correspondence.application import CorrespondenceApplication
from services.correspondence.domain import MessageType, Registered
from services.pathway import readmodel
from shared.apprec import AppRecStatus
from shared.broker import Tenant
from shared.domain import CommandContext
from shared.events import Envelope
from shared.events import correspondence as co
from shared.ids import FNR_SYSTEM
from tests.conftest import GP, MUNICIPALITY
from tests.support import (
    bind_test_queue,
    drain_queue,
    make_fnr,
    outbox_relay,
    projector_queue,
    run_projector,
    unique_queue,
    wait_for,
)

T0 = datetime(2026, 9, 7, 9, 0, tzinfo=UTC)
PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(2, 4, 36, 410)}
REGISTERED = Registered(GP.her_id, (MUNICIPALITY.her_id,))


@pytest.fixture
def store(backend: dict[str, str]) -> Iterator[CorrespondenceApplication]:
    app = CorrespondenceApplication.from_url(backend["correspondence"])
    yield app
    app.close()


def asked_and_answered(app: CorrespondenceApplication) -> UUID:
    asked = app.send_message(
        CommandContext("ask", T0, MUNICIPALITY, "nursing-home"),
        PATIENT,
        MessageType.REQUEST,
        "Ber om medisinske opplysninger før vedtak om sykehjemsplass",
        REGISTERED,
    )
    app.record_message_receipt(
        CommandContext("rcpt", T0 + timedelta(minutes=5), GP, "nursing-home"),
        asked.id,
        UUID(asked.first_message_id),
        AppRecStatus.OK,
        [],
    )
    app.answer_request(
        CommandContext("answer", T0 + timedelta(days=2), GP, "nursing-home"),
        asked.id,
        MessageType.MEDICAL_INFORMATION,
        "Demens, moderat grad",
    )
    return asked.id


def test_the_correspondence_is_published_as_envelopes_of_its_contract(
    store: CorrespondenceApplication, backend: dict[str, str], broker: Tenant, amqp_uri: str
) -> None:
    queue = unique_queue("correspondence")
    bind_test_queue(amqp_uri, "correspondence.events", queue)
    cid = asked_and_answered(store)
    with outbox_relay(store, backend["correspondence"], broker) as relay:
        assert relay.relay_once() == 3
    envelopes = [Envelope.from_json(b) for b in drain_queue(amqp_uri, queue)]
    assert [e.event_type for e in envelopes] == [
        "CorrespondenceMessageSent",
        "MessageReceiptRecorded",
        "CorrespondenceRequestAnswered",
    ]
    assert {(e.source, e.aggregate_id, e.patient["value"]) for e in envelopes} == {
        ("correspondence", str(cid), PATIENT["value"])
    }
    sent, _, answered = (e.data for e in envelopes)
    assert isinstance(sent, co.CorrespondenceMessageSent)
    assert (sent.from_her_id, sent.to_her_id, sent.message_type) == (
        MUNICIPALITY.her_id, GP.her_id, "REQUEST",
    )  # fmt: skip
    assert isinstance(answered, co.CorrespondenceRequestAnswered)
    assert (answered.request_message_id, answered.to_her_id) == (
        sent.message_id,
        MUNICIPALITY.her_id,
    )


def test_the_projector_folds_the_messages_with_their_receipts_and_the_task_closes(
    store: CorrespondenceApplication,
    backend: dict[str, str],
    engine: Engine,
    broker: Tenant,
    amqp_uri: str,
) -> None:
    queue = projector_queue("it-correspondence")
    projector, stop = run_projector(engine, broker, queue)
    try:
        assert projector.ready.wait(30), "the projector consumes its queue"
        asked_and_answered(store)
        with outbox_relay(store, backend["correspondence"], broker) as relay:
            assert relay.relay_once() == 3
        key = readmodel.patient_key(PATIENT)
        m, t = readmodel.messages, readmodel.tasks

        def folded() -> list[sa.Row] | None:  # type: ignore[type-arg]
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.select(m.c.name, m.c.to_her_id, m.c.status)
                    .where(m.c.patient_key == key)
                    .order_by(m.c.position)
                ).all()
            return rows if len(rows) == 2 else None

        rows = wait_for(folded, what="both messages in the read model")
        with engine.connect() as conn:
            tasks = conn.execute(sa.select(t.c.kind).where(t.c.patient_key == key)).scalars()
            kinds = list(tasks)
    finally:
        stop.set()
    assert [tuple(r) for r in rows] == [
        ("Forespørsel", GP.her_id, "OK"),
        ("Medisinske opplysninger", MUNICIPALITY.her_id, None),
    ]
    assert kinds == ["MESSAGE_RECEIPT"]  # answered; the answer's receipt is still owed
    drain_queue(amqp_uri, queue)
