"""The municipality's duty to pay for a patient ready for discharge, by the regulation's
conditions (rules.toml [discharge_payment]): each reason a period is not payable, the counting
of døgn, and readiness notices stored before they carried their content.

Envelopes are built as the admissions and discharges services publish them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest

from services.discharges.domain import READINESS_CONTENT, Discharge
from services.pathway.folding.discharges import NotPayable, not_payable_text, payment_spans
from services.pathway.folding.pathway import fold
from services.pathway.rows import derive_rows
from shared import rules
from shared.events import Envelope, Payload
from shared.events import admissions as adm
from shared.events import discharges as dc
from shared.events import registry as reg
from shared.events.envelope import downcast, upcast
from shared.ids import FNR_SYSTEM
from tests.support import READINESS_NOTICE, make_fnr

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(3, 2, 41, 210)}
HOSPITAL = {"her_id": "59", "org_kind": "HOSPITAL"}
STAY = "6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d0101"
DISCHARGE = "6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d0102"
NOTICE = "6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d0103"
HEALTH = "6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d0104"
READY_NOTICE = "6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d0105"
ADMITTED_AT = datetime(2024, 10, 7, 8, 0, tzinfo=UTC)  # Monday


def envelope(aggregate: str, version: int, data: Payload, when: datetime) -> Envelope:
    return Envelope(
        event_id=f"{aggregate}:{version}",
        aggregate_id=aggregate,
        aggregate_version=version,
        patient=PATIENT,
        occurred_at=when.isoformat(),
        recorded_at=when.isoformat(),
        actor=HOSPITAL,
        correlation_id="c",
        causation_id=f"cmd-{aggregate}-{version}",
        data=data,
    )


def stay(
    notice_after: timedelta | None, health_after: timedelta | None, services_likely: bool = True
) -> list[Envelope]:
    """A stay admitted on ADMITTED_AT, its admission notice and first Helseopplysninger sent
    that long after (None: not sent)."""
    events = [
        envelope(
            STAY,
            1,
            adm.PatientAdmitted(
                hospital_her_id="59",
                ward="Medisinsk sengepost",
                admission_type="ACUTE",
                referral_id=None,
                home_municipality_her_id="4201",
                municipal_services_likely=services_likely,
                existing_service_user=False,
            ),
            ADMITTED_AT,
        )
    ]
    if notice_after is not None:
        data = adm.AdmissionNoticeSent(message_id=NOTICE, to_her_id="4201")
        events.append(envelope(STAY, len(events) + 1, data, ADMITTED_AT + notice_after))
    if health_after is not None:
        data = adm.HealthInformationSent(message_id=HEALTH, to_her_id="4201", first=True)
        events.append(envelope(STAY, len(events) + 1, data, ADMITTED_AT + health_after))
    return events


def ready(**content: str | None) -> Envelope:
    """Declared ready on Monday a week after admission, the notice saying `content` (each item
    READINESS_NOTICE's unless given)."""
    said = {**READINESS_NOTICE, **content}
    data = dc.PatientDeclaredReadyForDischarge(
        stay_id=STAY,
        hospital_her_id="59",
        municipality_her_id="4201",
        message_id=READY_NOTICE,
        **said,
    )
    return envelope(DISCHARGE, 1, data, ADMITTED_AT + timedelta(days=7))


def span_of(events: list[Envelope]):  # type: ignore[no-untyped-def]
    pathway = fold(events)
    (discharge,) = pathway.discharges
    stays = {s.stay_id: s for s in pathway.stays}
    (span,) = payment_spans(discharge, stays.get(discharge.stay_id))
    return span


IN_TIME = timedelta(hours=3)


def test_notices_in_time_and_a_complete_readiness_notice_make_the_period_payable() -> None:
    span = span_of([*stay(IN_TIME, IN_TIME), ready()])
    assert span.payable and span.not_payable == ()


@pytest.mark.parametrize(
    ("notice_after", "health_after", "reasons"),
    [
        (None, IN_TIME, [NotPayable.ADMISSION_NOTICE_MISSING]),
        (timedelta(hours=25), IN_TIME, [NotPayable.ADMISSION_NOTICE_LATE]),
        (IN_TIME, None, [NotPayable.HEALTH_INFORMATION_MISSING]),
        (IN_TIME, timedelta(hours=30), [NotPayable.HEALTH_INFORMATION_LATE]),
        (
            timedelta(days=2),
            None,
            [NotPayable.ADMISSION_NOTICE_LATE, NotPayable.HEALTH_INFORMATION_MISSING],
        ),
    ],
)
def test_a_patient_expected_to_need_services_must_be_announced_within_24_hours(
    notice_after: timedelta | None, health_after: timedelta | None, reasons: list[NotPayable]
) -> None:
    span = span_of([*stay(notice_after, health_after), ready()])
    assert list(span.not_payable) == reasons and not span.payable


def test_exactly_24_hours_after_admission_is_still_in_time() -> None:
    assert span_of([*stay(timedelta(hours=24), timedelta(hours=24)), ready()]).payable


def test_no_notice_is_a_condition_when_the_hospital_expected_no_municipal_services() -> None:
    span = span_of([*stay(None, None, services_likely=False), ready()])
    assert span.payable


def test_a_readiness_notice_without_the_functional_level_is_not_payable_and_says_so() -> None:
    span = span_of([*stay(IN_TIME, IN_TIME), ready(functional_level=None)])
    assert list(span.not_payable) == [NotPayable.READINESS_NOTICE_INCOMPLETE]
    assert span.missing_content == ("functional_level",)
    text = not_payable_text(list(span.not_payable), list(span.missing_content))
    assert text == "Meldingen om utskrivningsklar pasient mangler funksjonsnivå."


def test_every_missing_item_of_the_notice_is_named_in_the_rules_order() -> None:
    span = span_of([*stay(IN_TIME, IN_TIME), ready(status=None, follow_up_needs=None)])
    assert span.missing_content == ("status", "follow_up_needs")
    text = not_payable_text(list(span.not_payable), list(span.missing_content))
    assert "status (avklarte problemstillinger), behov for oppfølging" in text


def test_a_late_notice_and_an_incomplete_readiness_notice_are_both_reasons() -> None:
    span = span_of([*stay(timedelta(hours=40), IN_TIME), ready(expected_course=None)])
    assert list(span.not_payable) == [
        NotPayable.ADMISSION_NOTICE_LATE,
        NotPayable.READINESS_NOTICE_INCOMPLETE,
    ]
    text = not_payable_text(list(span.not_payable), list(span.missing_content))
    assert text == (
        "Melding om innlagt pasient ble sendt senere enn 24 timer etter innleggelsen; "
        "Meldingen om utskrivningsklar pasient mangler forventet videre forløp."
    )


def test_a_running_period_counts_todays_døgn() -> None:
    span = span_of([*stay(IN_TIME, IN_TIME), ready()])
    ready_on = span.ready_on
    assert (span.on(ready_on).until - ready_on).days == 1  # declared ready today: one døgn
    later = span.on(ready_on + timedelta(days=4))
    assert later.ongoing and (later.until - ready_on).days == 5


def test_the_days_are_counted_per_year_and_a_year_without_a_rate_names_itself() -> None:
    assert rules.days_by_year(date(2025, 12, 30), date(2026, 1, 3)) == {2025: 2, 2026: 2}
    with pytest.raises(rules.MissingRule, match="2025"):
        rules.payment_days(date(2025, 12, 30), date(2026, 1, 3))
    rates = {**rules.published_rates(), 2025: 6100, 2026: 6300}
    cost = rules.payment_days(date(2025, 12, 30), date(2026, 1, 3), rates)
    assert cost.amount_nok == 2 * 6100 + 2 * 6300


def test_the_conditions_and_their_numbers_cite_their_sources() -> None:
    payment = rules.rules()["discharge_payment"]
    assert payment["counting"]["source"]
    for condition in payment["conditions"].values():
        assert "FOR-2011-11-18-1115" in condition["source"]
    assert list(rules.readiness_notice_content()) == list(READINESS_CONTENT)


# --- readiness notices stored before they carried their content ---------------------------------


def v1_envelope() -> dict[str, object]:
    return {
        "event_id": f"{DISCHARGE}:1",
        "event_type": "PatientDeclaredReadyForDischarge",
        "schema_version": 1,
        "source": "discharges",
        "data": {
            "stay_id": STAY,
            "hospital_her_id": "59",
            "municipality_her_id": "4201",
            "message_id": READY_NOTICE,
        },
    }


def test_a_version_1_readiness_event_reads_as_version_2_with_nothing_recorded() -> None:
    raw = upcast(v1_envelope())
    assert raw["schema_version"] == 2
    data = raw["data"]
    assert isinstance(data, dict)
    assert all(data[item] is None for item in READINESS_CONTENT)


def test_a_vendor_on_contract_2_receives_the_readiness_event_as_version_1() -> None:
    raw = upcast(v1_envelope())
    assert isinstance(raw["data"], dict)
    raw["data"].update(READINESS_NOTICE)
    older = downcast(raw, 1)
    assert older["schema_version"] == 1
    assert older["data"] == v1_envelope()["data"]


def test_a_stored_version_1_readiness_event_reads_with_its_content_unrecorded() -> None:
    state: dict[str, object] = {"stay_id": STAY, "message_id": READY_NOTICE}
    Discharge.PatientDeclaredReadyForDischarge.upcast_v1_v2(state)
    assert state["content"] == dict.fromkeys(READINESS_CONTENT)


# --- who pays ------------------------------------------------------------------------------------

REGISTRY_ACTOR = {"her_id": "112374", "org_kind": "REGISTRY"}


def registered(version: int, data: Payload) -> Envelope:
    e = envelope("6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d0199", version, data, ADMITTED_AT)
    return dataclasses.replace(e, actor=REGISTRY_ACTOR)


def payer(*register: Envelope) -> object:
    (row,) = derive_rows("k", [*register, *stay(IN_TIME, IN_TIME), ready()])["pathway_payments"]
    return row["payer_her_id"]


def test_the_municipality_the_patient_stays_in_pays_not_the_one_the_event_names() -> None:
    # The hospital notified 4201 (the home municipality it was given); the registers say the
    # patient lives in 4301 and stays in 5001 from October: the oppholdskommune pays.
    lives = registered(
        1, reg.ResidenceRecorded(municipality_her_id="4301", valid_from="2020-01-01")
    )
    stays_in = registered(
        2,
        reg.TemporaryResidenceRecorded(
            municipality_her_id="5001", valid_from="2024-10-01", valid_to=None
        ),
    )
    assert payer(lives, stays_in) == "5001"
    assert payer(lives) == "4301"  # no temporary stay recorded: where the patient lives
    assert payer() is None  # the registers do not know: no payer, never the event's 4201
