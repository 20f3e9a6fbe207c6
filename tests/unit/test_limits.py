"""The bounds of requests as data (shared/limits.toml), the check every service applies, and
the opaque page tokens."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from carepath.v1 import (
    admissions_pb2,
    common_pb2,
    correspondence_pb2,
    discharges_pb2,
    medications_pb2,
    pathway_pb2,
    referrals_pb2,
    registry_pb2,
)
from shared import limits, pages
from shared.errors import InvalidArgument

PROTOS = Path(__file__).resolve().parents[2] / "protos" / "carepath" / "v1"
MODULES = (
    admissions_pb2,
    correspondence_pb2,
    discharges_pb2,
    medications_pb2,
    pathway_pb2,
    referrals_pb2,
    registry_pb2,
)


def request_fields() -> dict[str, FieldDescriptor]:
    """Every field reachable from the request of any RPC, by full name."""
    found: dict[str, FieldDescriptor] = {}
    seen: set[str] = set()

    def walk(message: object) -> None:
        name = message.full_name  # type: ignore[attr-defined]
        if name in seen or name.startswith("google."):
            return
        seen.add(name)
        for field in message.fields:  # type: ignore[attr-defined]
            found[field.full_name] = field
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                walk(field.message_type)

    for module in MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                walk(method.input_type)
    return found


def proto_comment(full_name: str) -> str:
    """The comment lines just above a field in its .proto file."""
    _, _, message, field = full_name.split(".")
    for path in PROTOS.glob("*.proto"):
        lines = path.read_text().splitlines()
        inside = False
        for i, line in enumerate(lines):
            if re.match(rf"^message {message} \{{", line):
                inside = True
            elif inside and line.startswith("}"):
                inside = False
            elif inside and re.match(rf"^\s+(repeated\s+)?[\w.]+\s+{field}\s*=", line):
                above = []
                for previous in reversed(lines[:i]):
                    if not previous.strip().startswith("//"):
                        break
                    above.append(previous.strip())
                return " ".join(reversed(above))
    raise AssertionError(f"{full_name} is not in any .proto file")


BOUNDS = limits.limits()
NAMED = [(name, n, "characters") for name, n in BOUNDS.lengths.items()] + [
    (name, n, "entries") for name, n in BOUNDS.items.items()
]


@pytest.mark.parametrize(("name", "bound", "unit"), NAMED, ids=[n for n, _, _ in NAMED])
def test_each_bound_names_a_request_field_and_its_proto_comment_states_it(
    name: str, bound: int, unit: str
) -> None:
    fields = request_fields()
    assert name in fields, f"{name} (shared/limits.toml) is no field of any request"
    if unit == "entries":
        assert fields[name].is_repeated
    else:
        assert fields[name].type == FieldDescriptor.TYPE_STRING
    stated = f"At most {bound:,} {unit}".replace(",", " ")
    assert stated in proto_comment(name)


def test_every_free_text_field_has_a_bound_of_its_own() -> None:
    """Reasons, notes, names, descriptions and the like are named; only identifiers and codes
    fall back on the default."""
    free_text = re.compile(r"(reason|note|justification|description|name|dose|ward|query)$")
    for name, field in request_fields().items():
        if field.type == FieldDescriptor.TYPE_STRING and free_text.search(field.name):
            assert name in BOUNDS.lengths, f"{name} is free text without a bound of its own"


def test_an_apprec_error_description_of_a_million_characters_is_refused() -> None:
    request = referrals_pb2.RecordReferralReceiptRequest(
        receipt=common_pb2.AppRec(
            status=common_pb2.APP_REC_STATUS_REJECTED,
            errors=[
                common_pb2.AppRecError(code="E10", description="ok"),
                common_pb2.AppRecError(code="E20", description="x" * 1_000_000),
            ],
        )
    )
    with pytest.raises(InvalidArgument) as refused:
        limits.check(request)
    assert refused.value.field == "receipt.errors[1].description"
    assert "at most 1000 characters" in refused.value.reason


def test_too_many_apprec_errors_are_refused() -> None:
    errors = [common_pb2.AppRecError(code="E10", description="feil")] * 51
    request = referrals_pb2.RecordReferralReceiptRequest(receipt=common_pb2.AppRec(errors=errors))
    with pytest.raises(InvalidArgument) as refused:
        limits.check(request)
    assert (refused.value.field, refused.value.reason) == (
        "receipt.errors",
        "must have at most 50 entries (has 51)",
    )


def test_an_identifier_beyond_the_default_bound_is_refused() -> None:
    request = admissions_pb2.GetStayRequest(stay_id="s" * 129)
    with pytest.raises(InvalidArgument, match=r"stay_id: must be at most 128 characters"):
        limits.check(request)


def test_a_request_within_its_bounds_passes() -> None:
    request = referrals_pb2.SendReferralRequest(reason="r" * 10_000)
    request.metadata.command_id = "c" * 128
    request.metadata.occurred_at.FromJsonString("1900-01-01T00:00:00Z")
    limits.check(request)


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        pytest.param(253_402_300_800, 0, id="after 9999-12-31"),
        pytest.param(10**15, 0, id="far beyond year 9999"),
        pytest.param(-2_208_988_801, 0, id="before 1900"),
        pytest.param(0, -1, id="negative nanos"),
        pytest.param(0, 1_000_000_000, id="a whole second of nanos"),
    ],
)
def test_a_time_outside_what_a_time_can_be_is_refused_naming_the_field(
    seconds: int, nanos: int
) -> None:
    request = medications_pb2.GetMedicationListRequest()
    request.as_of.seconds, request.as_of.nanos = seconds, nanos
    with pytest.raises(InvalidArgument) as refused:
        limits.check(request)
    assert refused.value.field == "as_of"
    assert refused.value.reason.startswith("is not a valid time")


def list_request(**fields: object) -> pathway_pb2.ListPathwaysRequest:
    return pathway_pb2.ListPathwaysRequest(municipality_her_id="4201", **fields)  # type: ignore[arg-type]


def test_a_page_token_leads_to_the_position_it_was_made_for() -> None:
    token = pages.next_token(list_request(page_size=20), 40)
    assert pages.position(list_request(page_size=50, page_token=token)) == 40
    assert pages.position(list_request()) is None


def test_a_page_token_is_not_a_readable_number() -> None:
    token = pages.next_token(list_request(), 40)
    assert not token.isdigit()
    assert "40" not in token


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("40", id="a bare offset"),
        pytest.param("not base64 at all!", id="garbage"),
        pytest.param(pages.next_token(list_request(), 40)[:-3], id="cut short"),
        pytest.param(
            base64.urlsafe_b64encode(b"\x01" + (99).to_bytes(8, "big") + b"\0" * 16).decode(),
            id="forged without its check",
        ),
        pytest.param(pages.next_token(list_request(patient_query="Hansen"), 40), id="other query"),
        pytest.param(
            pages.next_token(registry_pb2.ListAccessesRequest(), 40), id="another list's token"
        ),
    ],
)
def test_a_page_token_that_is_not_from_this_query_is_refused(token: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        pages.position(list_request(page_token=token))
    assert refused.value.field == "page_token"
