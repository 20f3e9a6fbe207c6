"""Value objects for the Norwegian identifiers carepath exchanges.

Why this module exists: every service receives patient identifiers (fødselsnummer, D-, H- and
FH-numbers), organisation HER-ids and health-personnel HPR-numbers from other systems. A typo
in a national identity number can attach a referral to the wrong person, so values are checked
once, here, and afterwards travel as typed, immutable objects that are valid by construction.

Everything here is pure: no I/O, no logging, no clock except the "birth date is in the future"
check, and one process-wide switch, whether synthetic test numbers are accepted
(:func:`allow_synthetic_numbers`, set once when the process starts). Error messages are short
reasons for the caller to prefix with a field name; they never contain the identifier itself,
because a national identity number is personal data and error messages end up in logs and API
responses. For the same reason ``str()``/``repr()`` of a :class:`NationalId` masks the value.

National identity numbers (11 digits ``DDMMYY III K1 K2``)
----------------------------------------------------------
* Fødselsnummer: birth date ``DDMMYY``, individual number ``III``, check digits ``K1 K2``.
  Classic rule: ``K1 = 11 - (Σ d·w mod 11)`` with w = 3 7 6 1 8 9 4 5 2 over the first nine
  digits, ``K2`` likewise with w = 5 4 3 2 7 6 5 4 3 2 over the first ten; a result of 11 means
  0 and a result of 10 means no valid number has those leading digits.
* D-number: day + 40 (41–71). H-number: month + 40 (41–52). Both use the classic rule.
* FH-number (felles hjelpenummer): first digit 8 or 9, the other eight digits are random and
  carry no birth date or sex; the two check digits are computed exactly as for a fødselsnummer
  (Norsk helsenett, "Hva er felles hjelpenummer?", https://nhn.no/hva-er-felles-hjelpenummer/).
* The 2032 rule. Source: Skatteetaten, "Nytt fødselsnummer fra 2032",
  https://skatteetaten.github.io/folkeregisteret-api-dokumentasjon/nytt-fodselsnummer-fra-2032/
  (repository Skatteetaten/folkeregisteret-api-dokumentasjon, ``src/Foedselsnummer2032.md``,
  and its reference validator ``foedselsEllerDNummerValidator.js``). Fødselsnumre and D-numbers
  assigned from 1 January 2032 may use ``K1 = {11, 12, 13, 14} - (S mod 11)``, where S is the
  classic K1 sum; a result above 10 has 11 subtracted and a result of exactly 10 is discarded.
  Equivalently: the weighted sum over the first ten digits, with weight 1 for K1, must leave
  remainder 0, 1, 2 or 3 modulo 11 (the classic rule allows only 0). K2 is unchanged. Both rules
  are in force in parallel, so both are accepted. Numbers under the new rule encode neither sex
  nor birth century, so :attr:`NationalId.birth_date` is ``None`` for them; their day and month
  are still checked, with 29 February allowed when YY is divisible by 4 (as Skatteetaten's
  validator does). Skatteetaten's change covers only fødselsnumre and D-numbers, so H- and
  FH-numbers (assigned by health services) must satisfy the classic rule.
* Synthetic numbers. The national test population (Skatteetaten's synthetic Folkeregister,
  "Test-Norge", searched with Tenor) has fødselsnumre and D-numbers with 80 added to the month
  (81–92); the check digits are computed over the number as written, by either rule, and the
  number keeps its kind (a D-number's day + 40 too) and its birth date (month − 80). Sources:
  Skatteetaten, "Testdata for nye årsversjoner i nytt testmiljø" (2022-01-11, repository
  Skatteetaten/api-dokumentasjon, "syntetiske fødselsnumre vil ha +80 på måned", pointing to
  https://skatteetaten.github.io/folkeregisteret-api-dokumentasjon/test-for-konsumenter/);
  NAV's Dolly documentation on Test-Norge ("syntetiske fnr/dnr hvor det er lagt til 80 på
  måned", navikt/testnorge ``docs/applications/dolly/testnorge.md``); Skatteetaten's validator
  page, whose "Valider som syntetisk nummer (for testformål)" is likewise an explicit choice
  (``src/dokumenter/foedselsEllerDNummerValidator.html``). A synthetic number is never a real
  person's, and a real one is never synthetic, so the two cannot be confused; but test data must
  not enter a production system, so synthetic numbers are refused unless the process allows
  test data: :func:`allow_synthetic_numbers`, which the composition root calls once at process
  start from the setting ``CAREPATH_TEST_DATA=allow`` (shared.config.test_data_allowed; set by
  `make run` and the tests, never by default). The kinds and FHIR systems are those of the real
  numbers: a synthetic fødselsnummer is a fødselsnummer (``FNR_SYSTEM``), and
  :attr:`NationalId.synthetic` tells it apart. There are no synthetic H- or FH-numbers (health
  services assign those). (NAV's older synthetic numbers use month + 40 and are
  indistinguishable from H-numbers.)

python-stdnum (``stdnum.no.fodselsnummer``) computes the classic check digits and the birth date
of the classic fødselsnummer, D- and H-numbers (century from the individual number, calendar
date); it rejects FH-numbers, the 2032 rule and synthetic numbers and cannot say which kind a
number is, so only those parts are implemented here. A synthetic number's birth date is
python-stdnum's of the same digits with month − 80.
"""

from __future__ import annotations

import calendar
import datetime
import enum
import functools
import re
from dataclasses import dataclass
from typing import Final, Literal

from stdnum.exceptions import InvalidComponent, ValidationError
from stdnum.no import fodselsnummer as _stdnum_fnr
from stdnum.no import orgnr as _stdnum_orgnr

__all__ = [
    "DNR_SYSTEM",
    "FNR_SYSTEM",
    "HER_SYSTEM",
    "HNR_SYSTEM",
    "HPR_SYSTEM",
    "ORGNR_SYSTEM",
    "SYNTHETIC_MONTH_OFFSET",
    "CheckDigitRule",
    "HerId",
    "HprNumber",
    "IdentifierError",
    "NationalId",
    "NationalIdKind",
    "Orgnr",
    "allow_synthetic_numbers",
    "parse_patient_identifier",
    "synthetic_numbers_allowed",
]

FNR_SYSTEM: Final = "urn:oid:2.16.578.1.12.4.1.4.1"  # fødselsnummer
DNR_SYSTEM: Final = "urn:oid:2.16.578.1.12.4.1.4.2"  # D-number
HNR_SYSTEM: Final = "urn:oid:2.16.578.1.12.4.1.4.3"  # H-number and FH-number
HPR_SYSTEM: Final = "urn:oid:2.16.578.1.12.4.1.4.4"  # Helsepersonellregisteret number
HER_SYSTEM: Final = "urn:oid:2.16.578.1.12.4.1.2"  # Adresseregisteret HER-id
ORGNR_SYSTEM: Final = "urn:oid:2.16.578.1.12.4.1.4.101"  # Enhetsregisteret organisasjonsnummer

#: Which check-digit rule a national identity number satisfied.
CheckDigitRule = Literal["classic", "2032"]

_ONLY_DIGITS: Final = re.compile(r"[0-9]*")  # ASCII only: str.isdigit() also accepts "٣" and "²"
_K1_WEIGHTS: Final = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_REMAINDERS_2032: Final = frozenset({1, 2, 3})  # in addition to the classic remainder 0
#: What the national test population adds to the month of a fødselsnummer or D-number.
SYNTHETIC_MONTH_OFFSET: Final = 80
_SYNTHETIC_MONTHS: Final = range(SYNTHETIC_MONTH_OFFSET + 1, SYNTHETIC_MONTH_OFFSET + 13)


class _TestData:
    """Whether this process accepts synthetic test numbers: off unless the process's
    configuration allows test data (one switch, `allow_synthetic_numbers`)."""

    synthetic_allowed = False


def allow_synthetic_numbers(allowed: bool) -> None:
    """Accept synthetic test numbers (month + 80) from now on, or refuse them again.

    Called once at process start by the composition root (shared.bootstrap.test_data_policy,
    from ``CAREPATH_TEST_DATA``); a test session turns it on as `make run` does. The cache of
    :func:`parse_patient_identifier` is cleared, since its answers depend on it.
    """
    _TestData.synthetic_allowed = allowed
    parse_patient_identifier.cache_clear()


def synthetic_numbers_allowed() -> bool:
    """Whether this process accepts synthetic test numbers (`allow_synthetic_numbers`)."""
    return _TestData.synthetic_allowed


class IdentifierError(ValueError):
    """An identifier is malformed.

    The message is a short, specific reason ("must be 11 digits", "first check digit is wrong")
    meant to follow a field name the caller adds. It never contains the identifier value,
    because national identity numbers are personal data and messages reach logs and clients.
    """


class NationalIdKind(enum.StrEnum):
    """Which kind of 11-digit national identity number a value is.

    Kept separate from the identifier system because one system (``HNR_SYSTEM``) covers two
    kinds, and the kind decides whether a birth date can be derived.
    """

    FODSELSNUMMER = "FODSELSNUMMER"
    D_NUMBER = "D_NUMBER"
    H_NUMBER = "H_NUMBER"
    FH_NUMBER = "FH_NUMBER"


_SYSTEM_OF_KIND: Final = {
    NationalIdKind.FODSELSNUMMER: FNR_SYSTEM,
    NationalIdKind.D_NUMBER: DNR_SYSTEM,
    NationalIdKind.H_NUMBER: HNR_SYSTEM,
    NationalIdKind.FH_NUMBER: HNR_SYSTEM,
}
_KINDS_OF_SYSTEM: Final = {
    FNR_SYSTEM: frozenset({NationalIdKind.FODSELSNUMMER}),
    DNR_SYSTEM: frozenset({NationalIdKind.D_NUMBER}),
    HNR_SYSTEM: frozenset({NationalIdKind.H_NUMBER, NationalIdKind.FH_NUMBER}),
}
_KIND_LABEL: Final = {
    NationalIdKind.FODSELSNUMMER: "a fødselsnummer",
    NationalIdKind.D_NUMBER: "a D-number",
    NationalIdKind.H_NUMBER: "an H-number",
    NationalIdKind.FH_NUMBER: "an FH-number",
}
_SYSTEM_LABEL: Final = {
    FNR_SYSTEM: "fødselsnummer",
    DNR_SYSTEM: "D-number",
    HNR_SYSTEM: "H-number/FH-number",
}
#: Skatteetaten's 2032 rule applies to the numbers Folkeregisteret assigns, nothing else.
_KINDS_WITH_2032_RULE: Final = frozenset({NationalIdKind.FODSELSNUMMER, NationalIdKind.D_NUMBER})


@dataclass(frozen=True, slots=True, repr=False)
class NationalId:
    """A validated fødselsnummer, D-, H- or FH-number.

    Construct with :meth:`parse`. Direct construction re-validates and insists that ``kind``
    and ``rule`` are the ones the value implies, so no instance can hold an invalid number.
    ``str()``/``repr()`` mask the value so that logging the object leaks nothing; read
    ``.value`` explicitly where the number itself is needed.
    """

    value: str
    kind: NationalIdKind
    rule: CheckDigitRule

    def __post_init__(self) -> None:
        kind, rule = _classify_national_id(self.value)
        if self.kind != kind or self.rule != rule:
            raise IdentifierError("kind or check-digit rule does not match the number")
        object.__setattr__(self, "kind", kind)  # a plain str equal to the enum value → the enum

    @classmethod
    def parse(cls, value: str) -> NationalId:
        """Validate ``value`` (exactly 11 ASCII digits, no separators) and work out its kind.

        Raises :class:`IdentifierError` with the reason it is not valid.
        """
        kind, rule = _classify_national_id(value)
        return cls(value, kind, rule)

    @property
    def system(self) -> str:
        """The identifier system OID for this kind (H- and FH-numbers share ``HNR_SYSTEM``)."""
        return _SYSTEM_OF_KIND[self.kind]

    @property
    def birth_date(self) -> datetime.date | None:
        """The birth date the number encodes, or ``None`` when it encodes none.

        FH-numbers carry no birth date, and 2032-rule numbers do not encode the century. For
        classic numbers the date follows the classic century table; a number assigned from 2032
        that happens to satisfy the classic rule may therefore yield a wrong century, so the
        authoritative birth date is always the one in Folkeregisteret.
        """
        if self.kind is NationalIdKind.FH_NUMBER or self.rule == "2032":
            return None
        return _stdnum_fnr.get_birth_date(_calendar_digits(self.value))

    @property
    def synthetic(self) -> bool:
        """Whether this is a synthetic test number of the national test population (a
        fødselsnummer or D-number with month + 80): test data, never a real person's."""
        return _is_synthetic(self.value)

    def __repr__(self) -> str:
        synthetic = ", synthetic" if self.synthetic else ""
        return f"NationalId(kind={self.kind.value}, rule={self.rule}{synthetic}, value=***********)"

    def __str__(self) -> str:
        synthetic = " (synthetic)" if self.synthetic else ""
        return f"{self.kind.value}{synthetic} ***********"


@functools.lru_cache(maxsize=4096)  # a call checks its patient twice (policy, then command)
def parse_patient_identifier(system: str, value: str) -> NationalId:
    """Validate a patient identifier given as a FHIR-style (system, value) pair.

    Checks the system is one of the national identity number OIDs, that the value is valid,
    and that its kind fits the system, so a D-number is never stored as a fødselsnummer.
    """
    kinds = _KINDS_OF_SYSTEM.get(system)
    if kinds is None:
        expected = ", ".join(_KINDS_OF_SYSTEM)
        raise IdentifierError(f"unknown identifier system; expected one of {expected}")
    national_id = NationalId.parse(value)
    if national_id.kind not in kinds:
        raise IdentifierError(
            f"is {_KIND_LABEL[national_id.kind]} but the system is {_SYSTEM_LABEL[system]}"
        )
    return national_id


@dataclass(frozen=True, slots=True)
class HerId:
    """An organisation's or service's HER-id in Adresseregisteret: 1–9 digits, not zero.

    Leading zeros are rejected so each id has exactly one spelling and equality is reliable.
    """

    value: str

    def __post_init__(self) -> None:
        _check_register_number(self.value)

    @classmethod
    def parse(cls, value: str) -> HerId:
        """Validate ``value``; raises :class:`IdentifierError` with the reason."""
        return cls(value)


@dataclass(frozen=True, slots=True)
class Orgnr:
    """An organisation number of Enhetsregisteret (organisasjonsnummer): 9 digits with a mod-11
    check digit (python-stdnum `stdnum.no.orgnr`). HelseID names a client's organisation by it
    (`orgnr_parent`, `orgnr_child`); the registry's directory maps it to a HER-id.

    Only the compact spelling is accepted (no spaces or dots), so equality is reliable.
    """

    value: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9]{9}", self.value):
            raise IdentifierError("an organisation number is 9 digits")
        try:
            _stdnum_orgnr.validate(self.value)
        except ValidationError:
            raise IdentifierError("is not an organisation number (wrong check digit)") from None

    @classmethod
    def parse(cls, value: str) -> Orgnr:
        """Validate ``value``; raises :class:`IdentifierError` with the reason."""
        return cls(value)


@dataclass(frozen=True, slots=True)
class HprNumber:
    """A health professional's number in Helsepersonellregisteret: 1–9 digits, not zero.

    Leading zeros are rejected so each number has exactly one spelling.
    """

    value: str

    def __post_init__(self) -> None:
        _check_register_number(self.value)

    @classmethod
    def parse(cls, value: str) -> HprNumber:
        """Validate ``value``; raises :class:`IdentifierError` with the reason."""
        return cls(value)


def _check_register_number(value: object) -> None:
    """Shared rule for HER-ids and HPR-numbers, which are plain register sequence numbers."""
    if not isinstance(value, str):
        raise IdentifierError("must be a string of 1–9 digits")
    if not value:
        raise IdentifierError("is empty; must be 1–9 digits")
    if not _ONLY_DIGITS.fullmatch(value):
        raise IdentifierError("must contain only the digits 0–9 (no spaces, signs or letters)")
    if len(value) > 9:
        raise IdentifierError(f"must be at most 9 digits, got {len(value)}")
    if int(value) == 0:
        raise IdentifierError("must not be zero")
    if value[0] == "0":
        raise IdentifierError("must not start with 0")


def _classify_national_id(value: object) -> tuple[NationalIdKind, CheckDigitRule]:
    """Validate an 11-digit national identity number; return its kind and check-digit rule.

    Order of checks: format, then the structure the first six digits imply (kind, synthetic
    numbers, day and month), then the check digits, then python-stdnum's classic validation
    (century and calendar date against the real birth year, not in the future). Structural
    problems come first because a mistyped date is a more useful reason than a check digit.
    """
    if not isinstance(value, str):
        raise IdentifierError("must be a string of 11 digits")
    if not _ONLY_DIGITS.fullmatch(value):
        raise IdentifierError("must contain only the digits 0–9 (no spaces, dashes or letters)")
    if len(value) != 11:
        raise IdentifierError(f"must be 11 digits, got {len(value)}")
    kind = _kind_from_structure(value)
    rule = _check_digit_rule(value, kind)
    if rule == "classic" and kind is not NationalIdKind.FH_NUMBER:
        _validate_birth_date_with_stdnum(value)
    return kind, rule


def _is_synthetic(value: str) -> bool:
    """A fødselsnummer or D-number of the national test population: month + 80."""
    return value[0] not in "89" and int(value[2:4]) in _SYNTHETIC_MONTHS


def _calendar_digits(value: str) -> str:
    """`value` with a synthetic number's month made the calendar month (month − 80): the digits
    python-stdnum reads the birth date from. Other numbers are returned as they are."""
    if not _is_synthetic(value):
        return value
    return f"{value[:2]}{int(value[2:4]) - SYNTHETIC_MONTH_OFFSET:02d}{value[4:]}"


def _kind_from_structure(value: str) -> NationalIdKind:
    """Tell the kind from the first digits and check the day and month they encode."""
    if value[0] in "89":
        return NationalIdKind.FH_NUMBER
    if _is_synthetic(value):
        if not _TestData.synthetic_allowed:
            raise IdentifierError(
                "is a synthetic test number (month + 80), which this system does not accept"
            )
        value = _calendar_digits(value)
    day_digits = int(value[0:2])
    month_digits = int(value[2:4])
    is_d_number = 41 <= day_digits <= 71
    is_h_number = 41 <= month_digits <= 52
    if not (1 <= day_digits <= 31 or is_d_number):
        raise IdentifierError(
            f"day {day_digits:02d} is not a valid day (01–31, or 41–71 for a D-number)"
        )
    if not (1 <= month_digits <= 12 or is_h_number):
        raise IdentifierError(
            f"month {month_digits:02d} is not a valid month (01–12, or 41–52 for an H-number)"
        )
    if is_d_number and is_h_number:
        raise IdentifierError("cannot be both a D-number (day + 40) and an H-number (month + 40)")
    day = day_digits - 40 if is_d_number else day_digits
    month = month_digits - 40 if is_h_number else month_digits
    # The century is not known yet (and never is under the 2032 rule): like Skatteetaten's
    # validator, assume 20YY, which allows 29 February exactly when YY is divisible by 4.
    # python-stdnum later rejects 29.02.1900 for classic numbers.
    days_in_month = calendar.monthrange(2000 + int(value[4:6]), month)[1]
    if day > days_in_month:
        leap_hint = " of a non-leap year" if (day, month) == (29, 2) else ""
        raise IdentifierError(f"day {day} does not exist in month {month}{leap_hint}")
    if is_d_number:
        return NationalIdKind.D_NUMBER
    if is_h_number:
        return NationalIdKind.H_NUMBER
    return NationalIdKind.FODSELSNUMMER


def _check_digit_rule(value: str, kind: NationalIdKind) -> CheckDigitRule:
    """Check K1 and K2; return which K1 rule the number satisfies.

    The classic digits come from python-stdnum, which returns "10" when no digit fits.
    """
    classic_k1 = _stdnum_fnr.calc_check_digit1(value[:9])
    if value[9] == classic_k1:
        rule: CheckDigitRule = "classic"
    elif kind in _KINDS_WITH_2032_RULE and _k1_remainder(value) in _REMAINDERS_2032:
        rule = "2032"
    elif classic_k1 == "10" and kind not in _KINDS_WITH_2032_RULE:
        raise IdentifierError(
            "first check digit would be 10, so the first nine digits cannot form a valid number"
        )
    else:
        raise IdentifierError("first check digit is wrong")
    k2 = _stdnum_fnr.calc_check_digit2(value[:10])
    if k2 == "10":
        raise IdentifierError(
            "second check digit would be 10, so the first ten digits cannot form a valid number"
        )
    if value[10] != k2:
        raise IdentifierError("second check digit is wrong")
    return rule


def _k1_remainder(value: str) -> int:
    """Weighted sum of the first ten digits (K1 has weight 1) modulo 11; the 2032 rule's S."""
    weighted = sum(w * int(d) for w, d in zip(_K1_WEIGHTS, value[:9], strict=True))
    return (weighted + int(value[9])) % 11


def _validate_birth_date_with_stdnum(value: str) -> None:
    """What python-stdnum's validation adds to the checks above, on the calendar digits (a
    synthetic number's month − 80, whose check digits python-stdnum would not recompute): the
    century from the individual number, the calendar date in it, and a birth date not in the
    future. Its errors become specific reasons."""
    calendar_digits = _calendar_digits(value)
    try:
        born = _stdnum_fnr.get_birth_date(calendar_digits)
    except InvalidComponent as exc:
        raise IdentifierError(_reason_for_invalid_component(exc, calendar_digits)) from exc
    if born > datetime.date.today():
        raise IdentifierError("birth date is in the future")


def _reason_for_invalid_component(exc: InvalidComponent, value: str) -> str:
    """Name what python-stdnum found wrong; it signals all three cases with one exception type."""
    text = str(exc).lower()
    if "century" in text:
        return "individual number (digits 7–9) does not fit the birth year in any century"
    if value[2:4] in ("02", "42") and value[0:2] in ("29", "69"):
        return "day 29 does not exist in month 2 of the birth year"
    return "birth date does not exist"
