"""docs/asyncapi.yaml (and one document per older vendor contract version) is generated from
the event contract and the vendor delivery (`make docs`, services/streams/asyncapi.py): the
committed files are what the code writes, they are valid AsyncAPI 2.6 (the specification's
own JSON Schema, from the @asyncapi/specs package, tests/fixtures/asyncapi/), and what the
delivery sends a subscription is what the document says it receives."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from services.streams.asyncapi import delivered, document, message_name, path_of, render
from services.streams.domain import NotificationFormat, SubscriptionState
from services.streams.filters import Route, vendor_body
from services.streams.purposes import SubscriptionPurpose
from services.streams.selection import Selected, message_of
from shared.events import CONTRACT_VERSIONS, CURRENT_CONTRACT, Envelope
from shared.events.admissions import PatientAdmitted
from shared.events.referrals import ReferralReceiptRecorded, ReferralSent
from tests.support import ROOT
from tests.unit.test_vendor_filters import FJORDVIK, PRESCRIBED, VENDOR, envelope
from tests.wire import admitted

SPECIFICATION = ROOT / "tests" / "fixtures" / "asyncapi" / "2.6.0.json"


def test_the_committed_documents_are_what_the_contract_declares() -> None:
    for path, text in render().items():
        assert (ROOT / "docs" / path).read_text() == text, f"run `make docs` ({path})"
    assert path_of(CURRENT_CONTRACT) == "asyncapi.yaml"


@pytest.mark.parametrize("version", sorted(CONTRACT_VERSIONS))
def test_each_document_is_valid_asyncapi_2_6(version: int) -> None:
    specification = Draft7Validator(json.loads(SPECIFICATION.read_text()))
    committed = yaml.safe_load((ROOT / "docs" / path_of(version)).read_text())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in specification.iter_errors(committed)]
    assert errors == []
    assert committed["info"]["version"] == str(version)
    # the check has teeth: an operation the specification does not know is refused
    broken = {**committed, "channels": {"vendor.x": {"subscribe": {"acknowledge": True}}}}
    assert list(specification.iter_errors(broken))


def test_every_event_type_a_vendor_can_receive_has_its_message_and_blocks_have_none() -> None:
    doc = document()
    names = set(doc["components"]["messages"])
    admitted = "admissions.PatientAdmitted"
    assert f"{admitted}.v2" in names and f"{admitted}.v1" not in names
    assert f"{admitted}.v1" in document(1)["components"]["messages"]
    assert not {"registry.AccessBlocked.v1", "registry.AccessBlockLifted.v1"} & names
    assert {"admissions.MessageReceiptRecorded.v1", "discharges.MessageReceiptRecorded.v1"} <= names
    assert "FhirNotification" in names  # what a FHIR_R5 subscription receives instead
    assert len(names) == len(delivered(CURRENT_CONTRACT)) + 1


@cache
def _validator(version: int, message: str) -> Draft202012Validator:
    doc = document(version)
    registry: Registry[Any] = Registry().with_resource(
        "urn:asyncapi", Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    ref = f"urn:asyncapi#/components/messages/{message}/payload"
    return Draft202012Validator({"$ref": ref}, registry=registry)


def route(
    version: int = CURRENT_CONTRACT,
    purpose: SubscriptionPurpose = SubscriptionPurpose.HEALTH_CARE,
    free_text: bool = False,
) -> Route:
    return Route(
        "fjordvik-ehr", "vendor.fjordvik-ehr", VENDOR, purpose, frozenset(), frozenset(),
        (FJORDVIK,), free_text, SubscriptionState.ACTIVE, version,
    )  # fmt: skip


def errors(version: int, body: dict[str, Any], message: str | None = None) -> list[str]:
    """What the document of `version` finds wrong with `body` as the message `message` (by
    default the one of the body's event type and schema version)."""
    name = message or f"{body['source']}.{body['event_type']}.v{body['schema_version']}"
    return [e.message for e in _validator(version, name).iter_errors(body)]


SENT = envelope(
    ReferralSent(
        sender_her_id="8134021",
        receiver_her_id="59",
        reason="Tung pust, vekttap",
        priority="URGENT",
        cancer_pathway=None,
    )
)
RECEIPT = envelope(
    ReferralReceiptRecorded.model_validate(
        {
            "receiver_her_id": "59",
            "status": "OK_ERROR_IN_PART",
            "errors": [{"code": "E35", "description": "Pasienten har reservert seg"}],
        }
    )
)
ADMITTED = envelope(admitted())


@pytest.mark.parametrize("version", sorted(CONTRACT_VERSIONS))
@pytest.mark.parametrize("purpose", list(SubscriptionPurpose))
@pytest.mark.parametrize("free_text", [False, True])
@pytest.mark.parametrize("event", [ADMITTED, SENT, RECEIPT, PRESCRIBED], ids=lambda e: e.event_type)
def test_what_the_delivery_sends_is_what_the_document_describes(
    version: int, purpose: SubscriptionPurpose, free_text: bool, event: Envelope
) -> None:
    body, _ = vendor_body(event, route(version, purpose, free_text), 42)
    assert errors(version, body) == []


def test_a_version_1_patient_admitted_is_not_a_version_2_message() -> None:
    """The document tells the versions apart: the field's old name is refused by version 2."""
    as_v1, _ = vendor_body(ADMITTED, route(1), 42)
    as_v2, _ = vendor_body(ADMITTED, route(2), 42)
    assert errors(2, as_v2) == [] and errors(1, as_v1) == []
    name = message_name(PatientAdmitted)
    assert errors(2, {**as_v1, "contract": "carepath.vendor/2"}, name) != []
    assert errors(1, as_v2, "admissions.PatientAdmitted.v1") != []


@pytest.mark.parametrize("version", sorted(CONTRACT_VERSIONS))
def test_a_fhir_notification_the_delivery_sends_is_what_the_document_describes(
    version: int,
) -> None:
    fhir = dataclasses.replace(route(version), notification_format=NotificationFormat.FHIR_R5)
    body, _ = vendor_body(SENT, fhir, 42)
    sent = message_of(Selected(fhir, SENT, 42, body, None), datetime.now(UTC))
    assert errors(version, json.loads(sent), "FhirNotification") == []
    assert errors(version, {**json.loads(sent), "type": "history"}, "FhirNotification") != []
