"""A municipality's monthly numbers, measure by measure, on a small read model (SQLite rows
written here as the projector writes them), and the rule on small numbers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from services.pathway import migrate, readmodel, views
from services.pathway.statistics import Month, month_range, small_count_threshold, suppressed
from shared.access.model import Basis, relationships
from shared.errors import InvalidArgument
from shared.ids import FNR_SYSTEM
from tests.conftest import MUNICIPALITY, OTHER_MUNICIPALITY
from tests.support import make_fnr

JAN, FEB, MAR = Month(2026, 1), Month(2026, 2), Month(2026, 3)
QUARTER = [JAN, FEB, MAR]
#: Patients of the municipality (and one of another).
KEYS = [f"{FNR_SYSTEM}|{make_fnr(10 + i, 4, 51, 200)}" for i in range(8)]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = readmodel.create_engine(f"sqlite:///{tmp_path}/pathway.sqlite")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def insert(engine: Engine, table: Any, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)


def payment(
    key: str, ready_on: str, ends_on: str | None, payer: str | None, not_payable: str = ""
) -> dict[str, Any]:
    return {
        "not_payable": not_payable,
        "patient_key": key,
        "position": 0,
        "stay_id": f"stay-{key[-4:]}",
        "municipality_her_id": MUNICIPALITY.her_id,
        "payer_her_id": payer,
        "ready_on": ready_on,
        "ends_on": ends_on,
    }


def test_a_waiting_period_over_a_month_end_counts_each_day_in_its_own_month(
    engine: Engine,
) -> None:
    """Ready on 30 January, received on 3 February: 30 and 31 January, 1 and 2 February. A
    period of another payer (the patient stayed in another municipality) is not ours; a period
    whose payer the registers do not know is no one's, and a period the regulation's conditions
    make not payable is not counted; one still running counts today's døgn too."""
    insert(
        engine,
        readmodel.payments,
        [
            payment(KEYS[0], "2026-01-30", "2026-02-03", MUNICIPALITY.her_id),
            payment(KEYS[1], "2026-02-10", "2026-02-12", None),
            payment(KEYS[2], "2026-01-05", "2026-01-09", OTHER_MUNICIPALITY.her_id),
            payment(KEYS[3], "2026-03-28", None, MUNICIPALITY.her_id),
            payment(
                KEYS[4], "2026-02-20", "2026-02-25", MUNICIPALITY.her_id, "ADMISSION_NOTICE_LATE"
            ),
        ],
    )
    found = views.waiting_days(engine, MUNICIPALITY.her_id, QUARTER, today=date(2026, 3, 31))
    assert found == {
        JAN: views.WaitingDays(patients=1, days=2),
        FEB: views.WaitingDays(patients=1, days=2),
        MAR: views.WaitingDays(patients=1, days=4),  # 28–31 March: today's døgn counts
    }
    assert views.waiting_days(engine, OTHER_MUNICIPALITY.her_id, QUARTER, date(2026, 3, 31)) == {
        JAN: views.WaitingDays(patients=1, days=4)
    }


def t(moment: str) -> str:
    """A stored time (UTC) in 2026 from "MM-DD HH:MM"."""
    return f"2026-{moment[:5]}T{moment[6:]}:00.000000Z"


def message(key: str, position: int, sent_at: str, **receipt: str) -> dict[str, Any]:
    due = receipt.pop("due", sent_at.replace("T08:", "T10:"))  # due two hours after 08
    return {
        "patient_key": key,
        "position": position,
        "event_id": f"{key}:{position}",
        "name": "Melding om innlagt pasient",
        "to_her_id": receipt.pop("to", MUNICIPALITY.her_id),
        "to_kind": "MUNICIPALITY",
        "sent_at": sent_at,
        "status": "OK" if receipt else None,
        "answered_at": receipt.get("answered_at"),
        "receipt_due": due,
    }


def test_messages_to_the_municipality_count_by_how_they_were_answered(engine: Engine) -> None:
    """Sent in February (Oslo time: 31 January 23:30 UTC is 1 February): answered within the
    two hours, after them, not at all though past due, and not yet due at `now`."""
    insert(
        engine,
        readmodel.messages,
        [
            message(KEYS[0], 0, t("01-31 08:00"), answered_at=t("01-31 08:30")),
            message(KEYS[0], 1, t("02-02 08:00"), answered_at=t("02-02 09:00")),
            message(KEYS[1], 0, t("02-03 08:00"), answered_at=t("02-03 11:00")),
            message(KEYS[2], 0, t("02-04 08:00")),
            message(KEYS[3], 0, t("02-28 08:00")),
            message(KEYS[4], 0, t("02-05 08:00"), to=OTHER_MUNICIPALITY.her_id),
            message(KEYS[5], 0, t("01-31 23:30"), due=t("02-01 01:30"),
                    answered_at=t("01-31 23:40")),
        ],
    )  # fmt: skip
    now = datetime(2026, 2, 28, 9, 0, tzinfo=UTC)
    assert views.messages_answered(engine, MUNICIPALITY.her_id, QUARTER, now) == {
        JAN: views.MessagesAnswered(patients=1, messages=1, in_time=1),
        FEB: views.MessagesAnswered(
            patients=5, messages=5, in_time=2, late=1, overdue=1, pending=1
        ),
    }


def cancer_referral(key: str, reached_at: str | None, due: str) -> dict[str, Any]:
    """A colorectal pathway whose treatment started at `reached_at` (None: not yet), its
    standard total from the referral received due at `due` (the projector's measure)."""
    milestones = [
        {"milestone": "FIRST_APPOINTMENT", "reached_at": t("01-10 09:00")},
        {"milestone": "INVESTIGATION_COMPLETED", "reached_at": t("01-20 09:00")},
        {"milestone": "TREATMENT_START", "reached_at": reached_at, "due": due},
    ]
    return {
        "referral_id": f"ref-{key[-5:]}",
        "patient_key": key,
        "state": "ACCEPTED",
        "priority": "URGENT",
        "cancer_pathway": "COLORECTAL",
        "sender_her_id": "1234567",
        "receiver_her_id": "90123",
        "sent_at": t("01-02 09:00"),
        "updated_at": t("01-02 09:00"),
        "is_open": True,
        "cancer_milestones": milestones,
        "cancer_treatment_started_at": reached_at,
        "cancer_within_standard": None if reached_at is None else reached_at <= due,
    }


def resident(key: str, her_id: str, since: str, until: str | None = None) -> dict[str, Any]:
    return {
        "patient_key": key,
        "her_id": her_id,
        "basis": Basis.RESIDENCE_MUNICIPALITY.value,
        "hpr": None,
        "valid_from": since,
        "valid_to": until,
        "source_id": "registration",
    }


def test_cancer_pathways_of_residents_count_in_the_month_treatment_started(
    engine: Engine,
) -> None:
    """Residents when treatment started: one within the standard, one late, one whose
    treatment has not started; a patient who moved here after treatment is not counted."""
    insert(
        engine,
        readmodel.referrals,
        [
            cancer_referral(KEYS[0], t("02-03 09:00"), "2026-02-04T22:59:59.999999Z"),
            cancer_referral(KEYS[1], t("02-10 09:00"), "2026-02-04T22:59:59.999999Z"),
            cancer_referral(KEYS[2], None, "2026-02-04T22:59:59.999999Z"),
            cancer_referral(KEYS[3], t("03-01 09:00"), "2026-03-04T22:59:59.999999Z"),
        ],
    )
    insert(
        engine,
        relationships,
        [
            resident(KEYS[0], MUNICIPALITY.her_id, "2000-01-01T00:00:00.000000Z"),
            resident(KEYS[1], MUNICIPALITY.her_id, "2000-01-01T00:00:00.000000Z"),
            resident(KEYS[2], MUNICIPALITY.her_id, "2000-01-01T00:00:00.000000Z"),
            resident(KEYS[3], OTHER_MUNICIPALITY.her_id, "2000-01-01T00:00:00.000000Z",
                     t("03-10 00:00")),
            resident(KEYS[3], MUNICIPALITY.her_id, t("03-10 00:00")),
        ],
    )  # fmt: skip
    assert views.cancer_pathways_treated(engine, MUNICIPALITY.her_id, QUARTER) == {
        FEB: views.CancerPathwaysTreated(patients=2, pathways=2, within_standard=1)
    }
    assert views.cancer_pathways_treated(engine, OTHER_MUNICIPALITY.her_id, QUARTER) == {
        MAR: views.CancerPathwaysTreated(patients=1, pathways=1, within_standard=1)
    }


def test_a_figure_resting_on_one_to_four_patients_is_suppressed_a_zero_is_not() -> None:
    threshold = small_count_threshold()
    assert threshold == 5
    empty = views.WaitingDays()
    assert suppressed(views.WaitingDays(patients=4, days=40), empty, threshold) == (empty, True)
    five = views.WaitingDays(patients=5, days=12)
    assert suppressed(five, empty, threshold) == (five, False)
    assert suppressed(empty, empty, threshold) == (empty, False)


def test_the_month_range_is_checked_and_named() -> None:
    today = date(2026, 3, 15)
    assert month_range(Month(2025, 11), MAR, today) == [
        Month(2025, 11),
        Month(2025, 12),
        JAN,
        FEB,
        MAR,
    ]
    with pytest.raises(InvalidArgument) as backwards:
        month_range(MAR, JAN, today)
    assert backwards.value.field == "to_month"
    with pytest.raises(InvalidArgument) as future:
        month_range(JAN, Month(2026, 4), today)
    assert future.value.field == "to_month"
    with pytest.raises(InvalidArgument, match="36 months"):
        month_range(Month(2023, 1), MAR, today)
