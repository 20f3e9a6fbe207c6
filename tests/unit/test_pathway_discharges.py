"""Discharge in the pathway: readiness, the municipality's answer, payment days, destination.

Envelopes are built as the discharges service publishes them (its wire contract)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.pathway.folding import codec
from services.pathway.folding.discharges import fold_discharge, payment_periods
from services.pathway.folding.pathway import fold, pathway_of, replay
from services.pathway.rows import derive_rows
from shared import rules
from shared.events import Envelope, Payload
from shared.events import discharges as dc
from shared.events import medications as med
from shared.events import registry as reg
from shared.ids import FNR_SYSTEM
from shared.times import utc_iso
from tests.support import READINESS_NOTICE, make_fnr

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(12, 3, 42, 480)}
HOSPITAL = {"her_id": "59", "org_kind": "HOSPITAL"}
MUNICIPALITY = {"her_id": "4201", "org_kind": "MUNICIPALITY"}
DISCHARGE = "6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d0001"
STAY = "6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d0002"
NOTICE = "6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d0003"
REPORT = "6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d0004"


def event(version: int, data: Payload, when: datetime, actor: dict[str, str]) -> Envelope:
    return Envelope(
        event_id=f"{DISCHARGE}:{version}",
        aggregate_id=DISCHARGE,
        aggregate_version=version,
        patient=PATIENT,
        occurred_at=when.isoformat(),
        recorded_at=when.isoformat(),
        actor=actor,
        correlation_id="c",
        causation_id=f"cmd-{version}",
        data=data,
    )


FRIDAY = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
READY = event(
    1,
    dc.PatientDeclaredReadyForDischarge(
        stay_id=STAY,
        hospital_her_id="59",
        municipality_her_id="4201",
        message_id=NOTICE,
        **READINESS_NOTICE,
    ),
    FRIDAY,
    HOSPITAL,
)
CANNOT = event(
    2,
    dc.MunicipalityAnsweredReadiness(can_receive=False, receive_on=None),
    datetime(2024, 3, 1, 13, 0, tzinfo=UTC),
    MUNICIPALITY,
)
TUESDAY = event(
    3,
    dc.MunicipalityAnsweredReadiness(can_receive=True, receive_on="2024-03-05"),
    datetime(2024, 3, 4, 9, 0, tzinfo=UTC),
    MUNICIPALITY,
)
DISCHARGED = event(
    4,
    dc.PatientDischarged(
        stay_id=STAY,
        destination="SHORT_TERM_NURSING_HOME",
        destination_her_id="88001",
        report_message_id=REPORT,
        notice_message_id=None,
    ),
    datetime(2024, 3, 5, 11, 0, tzinfo=UTC),
    HOSPITAL,
)


def test_ready_on_friday_received_on_tuesday_costs_the_municipality_four_days() -> None:
    view = fold_discharge([READY, CANNOT, TUESDAY, DISCHARGED])
    assert view is not None
    (period,) = payment_periods(view, today=date(2024, 3, 20))
    assert (period.ready_on, period.until, period.ongoing) == (
        date(2024, 3, 1),
        date(2024, 3, 5),
        False,
    )
    assert rules.payment_days(period.ready_on, period.until).amount_nok == 4 * 5745


def test_while_the_municipality_cannot_receive_the_days_run_through_today() -> None:
    # Ready Friday 1 March, still waiting on Sunday 3 March: Friday, Saturday and today's døgn.
    view = fold_discharge([READY, CANNOT])
    assert view is not None
    (period,) = payment_periods(view, today=date(2024, 3, 3))
    assert period.ongoing and (period.until - period.ready_on).days == 3


def test_a_withdrawal_ends_the_payment_period() -> None:
    withdrawn = event(
        3,
        dc.ReadinessWithdrawn(reason="Feber", message_id=None),
        datetime(2024, 3, 2, 8, 0, tzinfo=UTC),
        HOSPITAL,
    )
    view = fold_discharge([READY, CANNOT, withdrawn])
    assert view is not None
    (period,) = payment_periods(view, today=date(2024, 3, 20))
    assert (period.until - period.ready_on).days == 1 and not period.ongoing


def test_an_unanswered_readiness_notice_waits_on_the_municipality() -> None:
    pathway = fold([READY])
    kinds = {(t.kind, t.waiting_on_her_id) for t in pathway.tasks}
    assert ("READINESS_ANSWER", "4201") in kinds
    assert ("MESSAGE_RECEIPT", "4201") in kinds


def test_after_discharge_the_patient_is_where_the_discharge_sent_them() -> None:
    pathway = fold([READY, CANNOT, TUESDAY, DISCHARGED])
    assert (pathway.location.kind, pathway.location.her_id) == ("SHORT_TERM_NURSING_HOME", "88001")
    assert not any(t.kind == "READINESS_ANSWER" for t in pathway.tasks)


def test_arrival_order_does_not_change_the_payment() -> None:
    view = fold_discharge([DISCHARGED, TUESDAY, READY, CANNOT])
    assert view is not None
    (period,) = payment_periods(view, today=date(2024, 3, 20))
    assert (period.until - period.ready_on).days == 4


def test_the_worklist_knows_who_waits_ready_for_discharge_until_they_leave() -> None:
    def ready_since(*events: Envelope) -> object:
        (patient,) = derive_rows("k", list(events))["pathway_patients"]
        return patient["ready_for_discharge_since"]

    assert ready_since(READY, CANNOT) == utc_iso(FRIDAY)
    assert ready_since(READY, CANNOT, TUESDAY, DISCHARGED) is None


def test_the_avmelding_is_a_message_that_waits_for_the_municipalitys_receipt() -> None:
    avmelding = "6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d0005"
    withdrawn = event(
        2,
        dc.ReadinessWithdrawn(reason="Feber", message_id=avmelding),
        datetime(2024, 3, 2, 8, 0, tzinfo=UTC),
        HOSPITAL,
    )
    pathway = fold([READY, withdrawn])
    names = {m.name: m for m in pathway.messages}
    assert names["Avmelding av utskrivningsklar pasient"].to_her_id == "4201"
    assert f"{avmelding}:MESSAGE_RECEIPT" in {t.task_id for t in pathway.tasks}
    answered = event(
        3,
        dc.MessageReceiptRecorded(message_id=avmelding, status="OK", errors=[]),
        datetime(2024, 3, 2, 8, 5, tzinfo=UTC),
        MUNICIPALITY,
    )
    pathway = fold([READY, withdrawn, answered])
    assert f"{avmelding}:MESSAGE_RECEIPT" not in {t.task_id for t in pathway.tasks}
    assert {m.name: m.status for m in pathway.messages}[
        "Avmelding av utskrivningsklar pasient"
    ] == "OK"


def test_melding_om_utskrevet_pasient_goes_to_the_municipality_with_the_discharge() -> None:
    notice = "6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d0006"
    discharged = event(
        4,
        dc.PatientDischarged(
            stay_id=STAY,
            destination="HOME",
            destination_her_id=None,
            report_message_id=None,
            notice_message_id=notice,
        ),
        datetime(2024, 3, 5, 11, 0, tzinfo=UTC),
        HOSPITAL,
    )
    pathway = fold([READY, CANNOT, TUESDAY, discharged])
    (message,) = [m for m in pathway.messages if m.name == "Melding om utskrevet pasient"]
    assert (message.to_her_id, message.to_kind, message.status) == ("4201", "MUNICIPALITY", None)
    assert f"{notice}:MESSAGE_RECEIPT" in {t.task_id for t in pathway.tasks}


GP_OFFICE = "77001"
LIST = "6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d0007"


def fastlege(since: str) -> Envelope:
    return Envelope(
        event_id="6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d0008:1",
        aggregate_id="6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d0008",
        aggregate_version=1,
        patient=PATIENT,
        occurred_at="2020-01-01T00:00:00+00:00",
        recorded_at="2020-01-01T00:00:00+00:00",
        actor={"her_id": "", "org_kind": "REGISTRY"},
        correlation_id="c",
        causation_id="reg",
        data=reg.FastlegeAssigned(
            gp_her_id=GP_OFFICE, gp_hpr="1234567", valid_from=since, valid_to=None
        ),
    )


def list_event(version: int, data: Payload, when: datetime) -> Envelope:
    gp = {"her_id": GP_OFFICE, "org_kind": "GP", "hpr": "1234567"}
    return Envelope(
        event_id=f"{LIST}:{version}",
        aggregate_id=LIST,
        aggregate_version=version,
        patient=PATIENT,
        occurred_at=when.isoformat(),
        recorded_at=when.isoformat(),
        actor=gp,
        correlation_id="c",
        causation_id=f"list-{version}",
        data=data,
    )


def test_after_a_discharge_the_fastlege_owes_a_medication_reconciliation() -> None:
    """Discharged on Tuesday 5 March 2024: the GP the registers name reconciles the list,
    due 7 days later (rules.toml); a reconciliation recorded after the discharge closes it,
    one recorded before it does not."""
    history = [fastlege("2019-06-01"), READY, CANNOT, TUESDAY, DISCHARGED]
    (task,) = [t for t in fold(history).tasks if t.kind == "MEDICATION_RECONCILIATION"]
    assert (task.waiting_on_her_id, task.waiting_on_kind) == (GP_OFFICE, "GP")
    assert task.since == utc_iso(datetime(2024, 3, 5, 11, 0, tzinfo=UTC))
    assert task.due.startswith("2024-03-12T22:59:59")
    started = list_event(1, med.MedicationListStarted(), datetime(2024, 2, 1, tzinfo=UTC))
    before = list_event(
        2,
        med.MedicationListReconciled(sources=["PATIENT"], note=None),
        datetime(2024, 2, 1, 1, tzinfo=UTC),
    )
    assert any(
        t.kind == "MEDICATION_RECONCILIATION" for t in fold([*history, started, before]).tasks
    )
    after = list_event(
        3,
        med.MedicationListReconciled(sources=["PATIENT", "HOSPITAL_RECORD"], note=None),
        datetime(2024, 3, 7, 9, 0, tzinfo=UTC),
    )
    tasks = fold([*history, started, before, after]).tasks
    assert not any(t.kind == "MEDICATION_RECONCILIATION" for t in tasks)


def test_without_a_known_fastlege_no_reconciliation_task_is_made() -> None:
    assert not any(
        t.kind == "MEDICATION_RECONCILIATION"
        for t in fold([READY, CANNOT, TUESDAY, DISCHARGED]).tasks
    )


def test_a_stored_state_keeps_the_reconciliation_that_closed_the_gps_task() -> None:
    """The projector adds a batch on top of the stored state (folding.codec): the latest
    reconciliation is part of it, or the closed task would open again on the next batch."""
    history = [
        fastlege("2019-06-01"),
        READY,
        CANNOT,
        TUESDAY,
        DISCHARGED,
        list_event(1, med.MedicationListStarted(), datetime(2024, 3, 6, tzinfo=UTC)),
        list_event(
            2,
            med.MedicationListReconciled(sources=["PATIENT"], note="Etter utskrivning"),
            datetime(2024, 3, 7, 9, 0, tzinfo=UTC),
        ),
    ]
    state, _timeline = replay(history)
    state.medications.take()  # type: ignore[union-attr]
    stored = codec.load(codec.dump(state))
    assert codec.dump(stored) == codec.dump(state)
    assert not any(t.kind == "MEDICATION_RECONCILIATION" for t in pathway_of(stored).tasks)
