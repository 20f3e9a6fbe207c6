"""Tests for shared.ids: Norwegian identifier value objects.

All numbers are constructed here from a birth date (or FH prefix) and an individual number by
``number()``, which computes the check digits independently of the code under test. None is
copied from a real person.
"""

from __future__ import annotations

import datetime
import random
import traceback
from collections.abc import Iterator

import pytest
from stdnum.no import fodselsnummer as stdnum_fnr

from shared import bootstrap
from shared.config import ConfigError
from shared.ids import (
    DNR_SYSTEM,
    FNR_SYSTEM,
    HER_SYSTEM,
    HNR_SYSTEM,
    HPR_SYSTEM,
    HerId,
    HprNumber,
    IdentifierError,
    NationalId,
    NationalIdKind,
    allow_synthetic_numbers,
    parse_patient_identifier,
    synthetic_numbers_allowed,
)

FNR = NationalIdKind.FODSELSNUMMER
DNR = NationalIdKind.D_NUMBER
HNR = NationalIdKind.H_NUMBER
FHN = NationalIdKind.FH_NUMBER

K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def weighted(digits: str, weights: tuple[int, ...]) -> int:
    return sum(w * int(d) for w, d in zip(weights, digits, strict=False))


def number(*parts: str, k1_remainder: int = 0, k2: str | None = None) -> str:
    """Join ``parts`` into nine digits and append check digits.

    K1 is chosen so the weighted sum over the first ten digits (K1 weight 1) leaves
    ``k1_remainder`` mod 11: 0 is the classic rule, 1–3 the 2032 rule, anything else a wrong
    K1. K2 is the classic digit unless ``k2`` overrides it.
    """
    first_nine = "".join(parts)
    assert len(first_nine) == 9, first_nine
    k1 = (k1_remainder - weighted(first_nine, K1_WEIGHTS)) % 11
    assert k1 != 10, f"no K1 gives remainder {k1_remainder} for {first_nine}; pick other digits"
    first_ten = first_nine + str(k1)
    if k2 is None:
        computed = -weighted(first_ten, K2_WEIGHTS) % 11
        assert computed != 10, f"K2 would be 10 for {first_ten}; pick other digits"
        k2 = str(computed)
    return first_ten + k2


def with_last_digit_changed(value: str) -> str:
    return value[:-1] + str((int(value[-1]) + 1) % 10)


def date(year: int, month: int, day: int) -> datetime.date:
    return datetime.date(year, month, day)


@pytest.fixture
def production() -> Iterator[None]:
    """As in a production process: synthetic test numbers refused (the test session allows
    them, tests/conftest.py); the session's setting afterwards."""
    before = synthetic_numbers_allowed()
    allow_synthetic_numbers(False)
    yield
    allow_synthetic_numbers(before)


@pytest.fixture
def test_data() -> Iterator[None]:
    """As in a process where test data is allowed (`make run`, the tests)."""
    before = synthetic_numbers_allowed()
    allow_synthetic_numbers(True)
    yield
    allow_synthetic_numbers(before)


# ----------------------------------------------------------------------------------------------
# Valid national identity numbers:  value, kind, rule, birth date
# ----------------------------------------------------------------------------------------------
#                                DD    MM    YY    III
VALID = [
    pytest.param(number("01", "01", "90", "000"), FNR, "classic", date(1990, 1, 1),
                 id="fnr 1990 (individual 000-499 -> 1900s)"),
    pytest.param(number("15", "03", "05", "500"), FNR, "classic", date(2005, 3, 15),
                 id="fnr 2005 (individual 500-999, year < 40 -> 2000s)"),
    pytest.param(number("24", "12", "65", "501"), FNR, "classic", date(1865, 12, 24),
                 id="fnr 1865 (individual 500-749, year >= 54 -> 1800s)"),
    pytest.param(number("17", "08", "45", "900"), FNR, "classic", date(1945, 8, 17),
                 id="fnr 1945 (individual 900-999, year >= 40 -> 1900s)"),
    pytest.param(number("29", "02", "00", "500"), FNR, "classic", date(2000, 2, 29),
                 id="fnr 29 February 2000"),
    pytest.param(number("12", "03", "75", "000"), FNR, "classic", date(1975, 3, 12),
                 id="fnr whose K1 computes to 11, i.e. 0"),
    pytest.param(number("41", "01", "90", "000"), DNR, "classic", date(1990, 1, 1),
                 id="D-number day 41 = 1st"),
    pytest.param(number("71", "12", "99", "000"), DNR, "classic", date(1999, 12, 31),
                 id="D-number day 71 = 31st"),
    pytest.param(number("01", "41", "90", "000"), HNR, "classic", date(1990, 1, 1),
                 id="H-number month 41 = January"),
    pytest.param(number("31", "52", "99", "000"), HNR, "classic", date(1999, 12, 31),
                 id="H-number month 52 = December"),
    pytest.param(number("8", "12345678"), FHN, "classic", None, id="FH-number starting 8"),
    pytest.param(number("9", "12345678"), FHN, "classic", None, id="FH-number starting 9"),
    pytest.param(number("30", "10", "82", "900", k1_remainder=1), FNR, "2032", None,
                 id="fnr 2032 rule, remainder 1"),
    pytest.param(number("30", "10", "82", "902", k1_remainder=2), FNR, "2032", None,
                 id="fnr 2032 rule, remainder 2"),
    pytest.param(number("30", "10", "82", "900", k1_remainder=3), FNR, "2032", None,
                 id="fnr 2032 rule, remainder 3"),
    pytest.param(number("12", "03", "75", "006", k1_remainder=1), FNR, "2032", None,
                 id="fnr 2032 rule where the classic K1 would be 10"),
    pytest.param(number("01", "01", "45", "600", k1_remainder=1), FNR, "2032", None,
                 id="fnr 2032 rule, individual number no longer tied to a century"),
    pytest.param(number("29", "02", "00", "000", k1_remainder=2), FNR, "2032", None,
                 id="fnr 2032 rule, 29 February of a year ending 00"),
    pytest.param(number("45", "06", "10", "500", k1_remainder=2), DNR, "2032", None,
                 id="D-number 2032 rule, remainder 2"),
]  # fmt: skip


@pytest.mark.parametrize(("value", "kind", "rule", "birth_date"), VALID)
def test_valid_national_ids(
    value: str, kind: NationalIdKind, rule: str, birth_date: datetime.date | None
) -> None:
    national_id = NationalId.parse(value)
    assert national_id.value == value
    assert national_id.kind is kind
    assert national_id.rule == rule
    assert national_id.birth_date == birth_date


@pytest.mark.parametrize(
    ("kind", "system"),
    [(FNR, FNR_SYSTEM), (DNR, DNR_SYSTEM), (HNR, HNR_SYSTEM), (FHN, HNR_SYSTEM)],
)
def test_system_follows_kind(kind: NationalIdKind, system: str) -> None:
    value = next(str(p.values[0]) for p in VALID if p.values[1] is kind)
    assert NationalId.parse(value).system == system


def test_kind_values_are_their_names() -> None:
    assert [k.value for k in NationalIdKind] == [
        "FODSELSNUMMER",
        "D_NUMBER",
        "H_NUMBER",
        "FH_NUMBER",
    ]


# ----------------------------------------------------------------------------------------------
# Invalid national identity numbers:  value, fragment of the reason
# ----------------------------------------------------------------------------------------------
VALID_FNR = number("01", "01", "90", "000")

INVALID = [
    # format
    pytest.param("", "must be 11 digits, got 0", id="empty"),
    pytest.param(VALID_FNR[:10], "must be 11 digits, got 10", id="10 digits"),
    pytest.param(VALID_FNR + "0", "must be 11 digits, got 12", id="12 digits"),
    pytest.param(VALID_FNR[:10] + "A", "only the digits 0–9", id="letter"),
    pytest.param(VALID_FNR[:6] + " " + VALID_FNR[6:], "only the digits 0–9", id="space inside"),
    pytest.param(VALID_FNR + "\n", "only the digits 0–9", id="trailing newline"),
    pytest.param("٠١٠١٩٠٠٠٠٨٣", "only the digits 0–9", id="Arabic-Indic digits"),
    # check digits
    pytest.param(number("01", "01", "90", "000", k1_remainder=4), "first check digit is wrong",
                 id="bad K1 (remainder 4, just past the 2032 rule)"),
    pytest.param(number("01", "01", "90", "000", k1_remainder=5), "first check digit is wrong",
                 id="bad K1 (remainder 5, neither rule)"),
    pytest.param(number("45", "06", "10", "500", k1_remainder=4), "first check digit is wrong",
                 id="D-number bad K1 (remainder 4)"),
    pytest.param(number("12", "03", "75", "006", k1_remainder=6), "first check digit is wrong",
                 id="fnr: classic K1 would be 10 and K1 fits no 2032 remainder either"),
    pytest.param(number("01", "41", "90", "000", k1_remainder=1), "first check digit is wrong",
                 id="H-number with 2032-rule K1 (2032 rule is for fnr/D only)"),
    pytest.param(number("9", "34567892", k1_remainder=2), "first check digit is wrong",
                 id="FH-number with 2032-rule K1"),
    pytest.param(number("12", "43", "75", "005", k1_remainder=1), "first check digit would be 10",
                 id="H-number whose K1 computes to 10"),
    pytest.param(number("8", "23456798", k1_remainder=1), "first check digit would be 10",
                 id="FH-number whose K1 computes to 10"),
    pytest.param(with_last_digit_changed(VALID_FNR), "second check digit is wrong", id="bad K2"),
    pytest.param(with_last_digit_changed(number("30", "10", "82", "900", k1_remainder=1)),
                 "second check digit is wrong", id="bad K2 on a 2032-rule number"),
    pytest.param(number("05", "05", "90", "000", k2="0"), "second check digit would be 10",
                 id="K2 computes to 10"),
    # day and month
    pytest.param(number("01", "13", "90", "000"), "month 13 is not a valid month", id="month 13"),
    pytest.param(number("01", "00", "90", "000"), "month 00 is not a valid month", id="month 00"),
    pytest.param(number("01", "53", "90", "000"), "month 53 is not a valid month",
                 id="month 53 (past H-number range)"),
    pytest.param(number("01", "93", "90", "000"), "month 93 is not a valid month", id="month 93"),
    pytest.param(number("00", "01", "90", "000"), "day 00 is not a valid day", id="day 00"),
    pytest.param(number("32", "01", "90", "000"), "day 32 is not a valid day", id="day 32"),
    pytest.param(number("40", "01", "90", "000"), "day 40 is not a valid day", id="day 40"),
    pytest.param(number("72", "01", "90", "000"), "day 72 is not a valid day",
                 id="day 72 (past D-number range)"),
    pytest.param(number("31", "04", "90", "000"), "day 31 does not exist in month 4",
                 id="31 April"),
    pytest.param(number("71", "04", "90", "001"), "day 31 does not exist in month 4",
                 id="D-number 31 April"),
    pytest.param(number("29", "02", "99", "000"), "day 29 does not exist in month 2 of a non-leap",
                 id="29 February 1999"),
    pytest.param(number("29", "02", "00", "100"), "day 29 does not exist in month 2 of the birth",
                 id="29 February 1900 (found by python-stdnum)"),
    # century and future (python-stdnum)
    pytest.param(number("01", "01", "45", "600"), "individual number (digits 7–9) does not fit",
                 id="individual 600 with year 45 fits no century"),
    # structure
    pytest.param(number("41", "41", "90", "001"), "cannot be both a D-number",
                 id="day + 40 and month + 40"),
]  # fmt: skip


@pytest.mark.parametrize(("value", "reason"), INVALID)
def test_invalid_national_ids(value: str, reason: str) -> None:
    with pytest.raises(IdentifierError) as raised:
        NationalId.parse(value)
    assert reason in str(raised.value)


@pytest.mark.skipif(datetime.date.today() >= date(2039, 12, 31), reason="no longer in the future")
def test_birth_date_in_the_future_is_rejected() -> None:
    with pytest.raises(IdentifierError, match="birth date is in the future"):
        NationalId.parse(number("31", "12", "39", "900"))  # 31 December 2039


def test_non_string_is_rejected() -> None:
    with pytest.raises(IdentifierError, match="must be a string"):
        NationalId.parse(1019000083)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# Agreement with python-stdnum on the classic rule
# ----------------------------------------------------------------------------------------------
def _is_classic_fnr_d_or_h(kind: NationalIdKind, rule: str) -> bool:
    return kind is not FHN and rule == "classic"


@pytest.mark.parametrize(("value", "kind", "rule", "birth_date"), VALID)
def test_valid_cases_agree_with_stdnum(
    value: str, kind: NationalIdKind, rule: str, birth_date: datetime.date | None
) -> None:
    if _is_classic_fnr_d_or_h(kind, rule):
        assert stdnum_fnr.is_valid(value)
        assert stdnum_fnr.get_birth_date(value) == birth_date
    else:
        # FH-numbers and 2032-rule numbers are what python-stdnum cannot handle, which is why
        # shared.ids implements them itself.
        assert not stdnum_fnr.is_valid(value)


# Where shared.ids is deliberately stricter than python-stdnum.
STRICTER_THAN_STDNUM = {"day + 40 and month + 40", "space inside"}


@pytest.mark.parametrize(("value", "reason"), INVALID)
def test_invalid_cases_agree_with_stdnum(
    value: str, reason: str, request: pytest.FixtureRequest
) -> None:
    case_id = request.node.callspec.id
    assert stdnum_fnr.is_valid(value) == (case_id in STRICTER_THAN_STDNUM)


@pytest.mark.usefixtures("production")
def test_classic_rule_agrees_with_stdnum_on_many_generated_numbers() -> None:
    """For every first-nine-digit pattern a fødselsnummer, D- or H-number can start with, try
    all ten K1 digits: shared.ids accepts under the classic rule exactly what stdnum accepts
    (in production: python-stdnum knows no synthetic numbers)."""
    rng = random.Random(2032)
    compared = 0
    for _ in range(400):
        day, month = rng.randint(0, 79), rng.randint(0, 99)
        if day > 40 and 40 < month < 60:
            continue  # D and H at once: python-stdnum accepts it, shared.ids refuses it
        first_nine = f"{day:02d}{month:02d}{rng.randint(0, 99):02d}{rng.randint(0, 999):03d}"
        for k1 in "0123456789":
            k2 = -weighted(first_nine + k1, K2_WEIGHTS) % 11
            value = first_nine + k1 + str(k2 % 10)
            try:
                accepted_as_classic = NationalId.parse(value).rule == "classic"
            except IdentifierError:
                accepted_as_classic = False
            assert accepted_as_classic == stdnum_fnr.is_valid(value), value
            compared += 1
    assert compared > 3000


# ----------------------------------------------------------------------------------------------
# The number never leaks through str(), repr() or error messages
# ----------------------------------------------------------------------------------------------
def _leaks(value: str, text: str) -> bool:
    """True if ``text`` contains the number, its birth-date part or its personnummer part."""
    return any(part in text for part in (value, value[:6], value[6:]))


@pytest.mark.parametrize(("value", "kind", "rule", "birth_date"), VALID)
def test_str_and_repr_mask_the_value(
    value: str, kind: NationalIdKind, rule: str, birth_date: datetime.date | None
) -> None:
    national_id = NationalId.parse(value)
    for text in (str(national_id), repr(national_id), f"{national_id}", f"{[national_id]}"):
        assert not _leaks(value, text), text
        assert kind.value in text


@pytest.mark.parametrize(("value", "reason"), INVALID)
def test_error_messages_do_not_contain_the_number(value: str, reason: str) -> None:
    with pytest.raises(IdentifierError) as raised:
        NationalId.parse(value)
    if len(value) >= 6:
        everything = "".join(traceback.format_exception(raised.value))  # includes the cause
        assert not _leaks(value, everything), everything


@pytest.mark.parametrize(
    ("system", "value"),
    [
        (FNR_SYSTEM, number("41", "01", "90", "000")),
        (DNR_SYSTEM, VALID_FNR),
        (HNR_SYSTEM, VALID_FNR),
        ("urn:oid:1.2.3", VALID_FNR),
    ],
)
def test_patient_identifier_errors_do_not_contain_the_number(system: str, value: str) -> None:
    with pytest.raises(IdentifierError) as raised:
        parse_patient_identifier(system, value)
    assert not _leaks(value, "".join(traceback.format_exception(raised.value)))


# ----------------------------------------------------------------------------------------------
# parse_patient_identifier: the kind must fit the system
# ----------------------------------------------------------------------------------------------
PATIENT_OK = [
    pytest.param(FNR_SYSTEM, VALID_FNR, FNR, id="fødselsnummer"),
    pytest.param(FNR_SYSTEM, number("30", "10", "82", "900", k1_remainder=1), FNR,
                 id="2032-rule fødselsnummer"),
    pytest.param(DNR_SYSTEM, number("41", "01", "90", "000"), DNR, id="D-number"),
    pytest.param(HNR_SYSTEM, number("01", "41", "90", "000"), HNR, id="H-number"),
    pytest.param(HNR_SYSTEM, number("8", "12345678"), FHN, id="FH-number"),
]  # fmt: skip


@pytest.mark.parametrize(("system", "value", "kind"), PATIENT_OK)
def test_patient_identifier_accepted(system: str, value: str, kind: NationalIdKind) -> None:
    national_id = parse_patient_identifier(system, value)
    assert (national_id.kind, national_id.system, national_id.value) == (kind, system, value)


PATIENT_REJECTED = [
    pytest.param(FNR_SYSTEM, number("41", "01", "90", "000"),
                 "is a D-number but the system is fødselsnummer", id="D-number as fnr"),
    pytest.param(FNR_SYSTEM, number("01", "41", "90", "000"),
                 "is an H-number but the system is fødselsnummer", id="H-number as fnr"),
    pytest.param(FNR_SYSTEM, number("8", "12345678"),
                 "is an FH-number but the system is fødselsnummer", id="FH-number as fnr"),
    pytest.param(DNR_SYSTEM, VALID_FNR,
                 "is a fødselsnummer but the system is D-number", id="fnr as D-number"),
    pytest.param(HNR_SYSTEM, VALID_FNR,
                 "is a fødselsnummer but the system is H-number/FH-number", id="fnr as H"),
    pytest.param(HNR_SYSTEM, number("41", "01", "90", "000"),
                 "is a D-number but the system is H-number/FH-number", id="D-number as H"),
    pytest.param(HPR_SYSTEM, VALID_FNR, "unknown identifier system; expected one of",
                 id="HPR system"),
    pytest.param(HER_SYSTEM, VALID_FNR, "unknown identifier system", id="HER system"),
    pytest.param("", VALID_FNR, "unknown identifier system", id="empty system"),
    pytest.param(FNR_SYSTEM + " ", VALID_FNR, "unknown identifier system",
                 id="system with trailing space"),
    pytest.param("urn:oid:1.2.3", "not a number", "unknown identifier system",
                 id="system is checked before the value"),
    pytest.param(FNR_SYSTEM, with_last_digit_changed(VALID_FNR), "second check digit is wrong",
                 id="invalid value"),
]  # fmt: skip


@pytest.mark.parametrize(("system", "value", "reason"), PATIENT_REJECTED)
def test_patient_identifier_rejected(system: str, value: str, reason: str) -> None:
    with pytest.raises(IdentifierError) as raised:
        parse_patient_identifier(system, value)
    assert reason in str(raised.value)


def test_unknown_system_lists_the_expected_ones() -> None:
    with pytest.raises(IdentifierError) as raised:
        parse_patient_identifier(HPR_SYSTEM, VALID_FNR)
    assert all(system in str(raised.value) for system in (FNR_SYSTEM, DNR_SYSTEM, HNR_SYSTEM))


# ----------------------------------------------------------------------------------------------
# Direct construction cannot produce an invalid NationalId
# ----------------------------------------------------------------------------------------------
def test_direct_construction_validates() -> None:
    assert NationalId(VALID_FNR, FNR, "classic") == NationalId.parse(VALID_FNR)
    with pytest.raises(IdentifierError, match="second check digit"):
        NationalId(with_last_digit_changed(VALID_FNR), FNR, "classic")
    with pytest.raises(IdentifierError, match="does not match"):
        NationalId(VALID_FNR, DNR, "classic")
    with pytest.raises(IdentifierError, match="does not match"):
        NationalId(VALID_FNR, FNR, "2032")


def test_direct_construction_turns_a_kind_string_into_the_enum() -> None:
    national_id = NationalId(VALID_FNR, "FODSELSNUMMER", "classic")  # type: ignore[arg-type]
    assert national_id.kind is FNR


def test_national_id_is_immutable_and_hashable() -> None:
    national_id = NationalId.parse(VALID_FNR)
    with pytest.raises(AttributeError):
        national_id.value = "x"  # type: ignore[misc]
    assert len({national_id, NationalId.parse(VALID_FNR)}) == 1


# ----------------------------------------------------------------------------------------------
# HER-id and HPR-number
# ----------------------------------------------------------------------------------------------
REGISTER_NUMBER_TYPES = [pytest.param(HerId, id="HerId"), pytest.param(HprNumber, id="HprNumber")]


@pytest.mark.parametrize("cls", REGISTER_NUMBER_TYPES)
@pytest.mark.parametrize("value", ["1", "80", "8093", "1234567", "999999999"])
def test_register_numbers_valid(cls: type[HerId] | type[HprNumber], value: str) -> None:
    assert cls.parse(value).value == value
    assert cls.parse(value) == cls(value)


@pytest.mark.parametrize("cls", REGISTER_NUMBER_TYPES)
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param("", "is empty", id="empty"),
        pytest.param("0", "must not be zero", id="zero"),
        pytest.param("000", "must not be zero", id="zeros"),
        pytest.param("0123", "must not start with 0", id="leading zero"),
        pytest.param("1234567890", "must be at most 9 digits, got 10", id="10 digits"),
        pytest.param("12a", "only the digits 0–9", id="letter"),
        pytest.param(" 123", "only the digits 0–9", id="leading space"),
        pytest.param("123\n", "only the digits 0–9", id="trailing newline"),
        pytest.param("-1", "only the digits 0–9", id="negative"),
        pytest.param("+1", "only the digits 0–9", id="plus sign"),
        pytest.param("12.0", "only the digits 0–9", id="decimal"),
        pytest.param("١٢٣", "only the digits 0–9", id="Arabic-Indic digits"),
        pytest.param("²", "only the digits 0–9", id="superscript two"),
    ],
)
def test_register_numbers_invalid(
    cls: type[HerId] | type[HprNumber], value: str, reason: str
) -> None:
    with pytest.raises(IdentifierError) as raised:
        cls.parse(value)
    assert reason in str(raised.value)
    with pytest.raises(IdentifierError):
        cls(value)


@pytest.mark.parametrize("cls", REGISTER_NUMBER_TYPES)
def test_register_number_must_be_a_string(cls: type[HerId] | type[HprNumber]) -> None:
    with pytest.raises(IdentifierError, match="must be a string"):
        cls.parse(123)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# Synthetic numbers of the national test population (month + 80): refused in production,
# accepted where test data is allowed, and then checked as strictly as real ones
# ----------------------------------------------------------------------------------------------
#                                DD    MM    YY    III
SYNTHETIC = [
    pytest.param(number("01", "81", "90", "000"), FNR, "classic", date(1990, 1, 1),
                 id="synthetic fnr, January (81)"),
    pytest.param(number("24", "92", "65", "501"), FNR, "classic", date(1865, 12, 24),
                 id="synthetic fnr, December (92), 1800s"),
    pytest.param(number("29", "82", "00", "500"), FNR, "classic", date(2000, 2, 29),
                 id="synthetic fnr, 29 February 2000"),
    pytest.param(number("41", "81", "90", "000"), DNR, "classic", date(1990, 1, 1),
                 id="synthetic D-number (day + 40, month + 80)"),
    pytest.param(number("30", "90", "82", "900", k1_remainder=1), FNR, "2032", None,
                 id="synthetic fnr, 2032 rule"),
    pytest.param(number("45", "86", "10", "500", k1_remainder=2), DNR, "2032", None,
                 id="synthetic D-number, 2032 rule"),
]  # fmt: skip


@pytest.mark.usefixtures("production")
@pytest.mark.parametrize(("value", "kind", "rule", "birth_date"), SYNTHETIC)
def test_a_synthetic_number_is_refused_where_test_data_is_not_allowed(
    value: str, kind: NationalIdKind, rule: str, birth_date: datetime.date | None
) -> None:
    system = FNR_SYSTEM if kind is FNR else DNR_SYSTEM
    for parse in (lambda: NationalId.parse(value), lambda: parse_patient_identifier(system, value)):
        with pytest.raises(IdentifierError) as raised:
            parse()
        assert str(raised.value) == (
            "is a synthetic test number (month + 80), which this system does not accept"
        )
        assert not _leaks(value, "".join(traceback.format_exception(raised.value)))


@pytest.mark.usefixtures("test_data")
@pytest.mark.parametrize(("value", "kind", "rule", "birth_date"), SYNTHETIC)
def test_a_synthetic_number_keeps_its_kind_and_birth_date_where_test_data_is_allowed(
    value: str, kind: NationalIdKind, rule: str, birth_date: datetime.date | None
) -> None:
    national_id = NationalId.parse(value)
    assert (national_id.kind, national_id.rule, national_id.birth_date) == (kind, rule, birth_date)
    assert national_id.synthetic
    assert national_id.system == (FNR_SYSTEM if kind is FNR else DNR_SYSTEM)
    assert parse_patient_identifier(national_id.system, value) == national_id
    for text in (str(national_id), repr(national_id)):
        assert "synthetic" in text
        assert not _leaks(value, text), text


SYNTHETIC_INVALID = [
    pytest.param(number("30", "82", "90", "000"), "day 30 does not exist in month 2",
                 id="30 February"),
    pytest.param(number("29", "82", "99", "000"), "day 29 does not exist in month 2 of a non-leap",
                 id="29 February 1999"),
    pytest.param(number("29", "82", "00", "100"), "day 29 does not exist in month 2 of the birth",
                 id="29 February 1900 (found by python-stdnum)"),
    pytest.param(number("01", "81", "45", "600"), "individual number (digits 7–9) does not fit",
                 id="individual 600 with year 45 fits no century"),
    pytest.param(number("01", "80", "90", "000"), "month 80 is not a valid month", id="month 80"),
    pytest.param(number("01", "93", "90", "000"), "month 93 is not a valid month", id="month 93"),
    pytest.param(number("72", "81", "90", "000"), "day 72 is not a valid day", id="day 72"),
    pytest.param(number("01", "81", "90", "000", k1_remainder=4), "first check digit is wrong",
                 id="bad K1"),
    pytest.param(with_last_digit_changed(number("01", "81", "90", "000")),
                 "second check digit is wrong", id="bad K2"),
]  # fmt: skip


@pytest.mark.usefixtures("test_data")
@pytest.mark.parametrize(("value", "reason"), SYNTHETIC_INVALID)
def test_a_synthetic_number_is_checked_as_strictly_as_a_real_one(value: str, reason: str) -> None:
    with pytest.raises(IdentifierError) as raised:
        NationalId.parse(value)
    assert reason in str(raised.value)
    assert not _leaks(value, "".join(traceback.format_exception(raised.value)))


@pytest.mark.usefixtures("test_data")
@pytest.mark.skipif(datetime.date.today() >= date(2039, 12, 31), reason="no longer in the future")
def test_a_synthetic_birth_date_in_the_future_is_rejected() -> None:
    with pytest.raises(IdentifierError, match="birth date is in the future"):
        NationalId.parse(number("31", "92", "39", "900"))  # 31 December 2039


@pytest.mark.usefixtures("test_data")
def test_synthetic_numbers_agree_with_stdnum_on_the_real_number_of_the_same_birth_date() -> None:
    """For many birth dates and individual numbers, the synthetic number (month + 80, check
    digits computed over it) is accepted exactly when python-stdnum accepts the real number
    with the same digits, and both give the same birth date."""
    rng = random.Random(80)
    compared = 0
    for _ in range(3000):
        day, month = rng.randint(1, 71), rng.randint(1, 12)
        rest = f"{rng.randint(0, 99):02d}{rng.randint(0, 999):03d}"
        try:
            real = number(f"{day:02d}", f"{month:02d}", rest[:2], rest[2:])
            synthetic = number(f"{day:02d}", f"{month + 80:02d}", rest[:2], rest[2:])
        except AssertionError:
            continue  # no check digit fits one of them
        try:
            parsed: NationalId | None = NationalId.parse(synthetic)
        except IdentifierError:
            parsed = None
        if stdnum_fnr.is_valid(real):
            assert parsed is not None, synthetic
            assert parsed.birth_date == stdnum_fnr.get_birth_date(real)
        else:
            assert parsed is None, synthetic
        compared += 1
    assert compared > 1000


@pytest.mark.parametrize("allowed", [False, True], ids=["production", "test data allowed"])
@pytest.mark.parametrize(("value", "kind", "rule", "birth_date"), VALID)
def test_real_numbers_are_the_same_whether_test_data_is_allowed_or_not(
    value: str,
    kind: NationalIdKind,
    rule: str,
    birth_date: datetime.date | None,
    allowed: bool,
) -> None:
    before = synthetic_numbers_allowed()
    allow_synthetic_numbers(allowed)
    try:
        national_id = NationalId.parse(value)
    finally:
        allow_synthetic_numbers(before)
    assert (national_id.kind, national_id.rule, national_id.birth_date) == (kind, rule, birth_date)
    assert not national_id.synthetic


@pytest.mark.usefixtures("production")
def test_an_fh_number_with_80_plus_in_its_third_and_fourth_digit_is_no_synthetic_number() -> None:
    value = number("9", "1", "85", "12346")
    assert NationalId.parse(value).kind is FHN
    assert not NationalId.parse(value).synthetic


def test_switching_applies_to_identifiers_checked_before() -> None:
    """parse_patient_identifier caches its answers; switching clears them."""
    value = number("01", "81", "90", "000")
    before = synthetic_numbers_allowed()
    try:
        allow_synthetic_numbers(True)
        assert parse_patient_identifier(FNR_SYSTEM, value).synthetic
        allow_synthetic_numbers(False)
        with pytest.raises(IdentifierError, match="synthetic"):
            parse_patient_identifier(FNR_SYSTEM, value)
    finally:
        allow_synthetic_numbers(before)


@pytest.mark.parametrize(
    ("environ", "allowed"),
    [({}, False), ({"CAREPATH_TEST_DATA": ""}, False), ({"CAREPATH_TEST_DATA": "allow"}, True)],
    ids=["unset (production)", "empty", "allow"],
)
def test_the_process_setting_switches_synthetic_numbers(
    environ: dict[str, str], allowed: bool
) -> None:
    """What every process applies at its start (shared.process.start_process)."""
    value = number("01", "81", "90", "000")
    before = synthetic_numbers_allowed()
    try:
        assert bootstrap.test_data_policy(environ) is allowed
        assert synthetic_numbers_allowed() is allowed
        if allowed:
            assert NationalId.parse(value).synthetic
        else:
            with pytest.raises(IdentifierError, match="synthetic"):
                NationalId.parse(value)
    finally:
        allow_synthetic_numbers(before)


@pytest.mark.parametrize("wrong", ["yes", "1", "ALLOW", "true"])
def test_a_wrong_test_data_setting_is_a_configuration_error(wrong: str) -> None:
    before = synthetic_numbers_allowed()
    with pytest.raises(ConfigError, match="CAREPATH_TEST_DATA must be 'allow' or unset"):
        bootstrap.test_data_policy({"CAREPATH_TEST_DATA": wrong})
    assert synthetic_numbers_allowed() is before
