"""A command's metadata as every service reads it (shared.api.command_context): ids the public
envelope cannot carry are refused before anything is stored."""

from __future__ import annotations

import pytest

from carepath.v1 import correspondence_pb2
from shared import api
from shared.errors import InvalidArgument
from tests.conftest import MUNICIPALITY
from tests.support import meta


@pytest.mark.parametrize(
    ("command_id", "correlation_id", "field"),
    [
        ("demo-forespørsel", "", "metadata.command_id"),  # non-ASCII
        ("svar på forespørsel", "", "metadata.command_id"),  # spaces inside
        ("ask-1", "nursing home", "metadata.correlation_id"),
    ],
)
def test_an_id_the_envelope_cannot_carry_is_refused_naming_the_field(
    command_id: str, correlation_id: str, field: str
) -> None:
    request = correspondence_pb2.SendCorrespondenceMessageRequest(metadata=meta(command_id))
    request.metadata.correlation_id = correlation_id
    with pytest.raises(InvalidArgument) as refused:
        api.command_context(request, MUNICIPALITY)
    assert refused.value.field == field


def test_printable_ascii_ids_are_taken() -> None:
    request = correspondence_pb2.SendCorrespondenceMessageRequest(metadata=meta("demo-sporsmal:1"))
    assert api.command_context(request, MUNICIPALITY).correlation_id == "demo-sporsmal:1"
