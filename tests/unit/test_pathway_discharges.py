"""Discharge in the pathway: readiness, the municipality's answer, payment days, destination.

Envelopes are built as the discharges service publishes them (its wire contract)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.pathway.folding.discharges import fold_discharge, payment_periods
from services.pathway.folding.pathway import fold
from services.pathway.rows import derive_rows
from shared import rules
from shared.events import Envelope, Payload
from shared.events import discharges as dc
from shared.ids import FNR_SYSTEM
from shared.times import utc_iso
from tests.support import make_fnr

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
        stay_id=STAY, hospital_her_id="59", municipality_her_id="4201", message_id=NOTICE
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


def test_while_the_municipality_cannot_receive_the_days_run_until_today() -> None:
    view = fold_discharge([READY, CANNOT])
    assert view is not None
    (period,) = payment_periods(view, today=date(2024, 3, 3))
    assert period.ongoing and (period.until - period.ready_on).days == 2


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
