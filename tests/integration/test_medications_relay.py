"""The medications outbox relay on the real broker: a patient's medication history reaches the
`medications.events` exchange as public envelopes, in recorded order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from services.medications.application import MedicationsApplication
from services.medications.domain import ReconciliationSource, medication_list_id
from shared.broker import Tenant
from shared.domain import CommandContext
from shared.events import Envelope
from shared.events import medications as med
from shared.ids import FNR_SYSTEM
from tests.conftest import GP, HOSPITAL
from tests.support import bind_test_queue, drain_queue, make_fnr, outbox_relay, unique_queue

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(12, 3, 42, 480)}


@pytest.fixture
def store(backend: dict[str, str]) -> Iterator[MedicationsApplication]:
    app = MedicationsApplication.from_url(backend["medications"])
    yield app
    app.close()


def test_a_patients_medication_history_is_published_as_envelopes(
    store: MedicationsApplication, backend: dict[str, str], broker: Tenant, amqp_uri: str
) -> None:
    app = store
    queue = unique_queue("medications")
    bind_test_queue(amqp_uri, "medications.events", queue)
    prescribed = app.prescribe(
        CommandContext("rx", T0, GP, "stay-1"), PATIENT, "B01AA03", "Warfarin", "5 mg x 1", None
    )
    (entry_id,) = prescribed.entries
    app.pause(
        CommandContext("pause", T0 + timedelta(days=3), HOSPITAL, "stay-1"),
        PATIENT,
        UUID(entry_id),
        "Pause før operasjon",
    )
    app.reconcile(
        CommandContext("rec", T0 + timedelta(days=4), HOSPITAL, "stay-1"),
        PATIENT,
        [ReconciliationSource.PATIENT, ReconciliationSource.GP_RECORD],
        None,
    )

    with outbox_relay(app, backend["medications"], broker) as relay:
        assert relay.relay_once() == 4
    envelopes = [Envelope.from_json(b) for b in drain_queue(amqp_uri, queue)]

    assert [e.event_type for e in envelopes] == [
        "MedicationListStarted",
        "MedicationPrescribed",
        "MedicationPaused",
        "MedicationListReconciled",
    ]
    list_id = str(medication_list_id(PATIENT))
    assert {(e.source, e.aggregate_id, e.correlation_id) for e in envelopes} == {
        ("medications", list_id, "stay-1")
    }
    assert all(e.patient == PATIENT for e in envelopes)
    started, prescribed_env, paused, reconciled = envelopes
    assert started.data == med.MedicationListStarted()
    assert prescribed_env.data == med.MedicationPrescribed(
        entry_id=entry_id,
        medication=med.Medication(atc_code="B01AA03", name="Warfarin"),
        dose="5 mg x 1",
        reason=None,
        source_her_id=GP.her_id,
        source_kind="GP",
    )
    assert (paused.data, paused.actor["her_id"], paused.causation_id) == (
        med.MedicationPaused(entry_id=entry_id, reason="Pause før operasjon"),
        HOSPITAL.her_id,
        "pause",
    )
    assert reconciled.data == med.MedicationListReconciled(
        sources=["PATIENT", "GP_RECORD"], note=None
    )
    assert reconciled.occurred_at == (T0 + timedelta(days=4)).isoformat()
