"""The event contract: declared once, mapped explicitly at the relay, documented from the
declaration, and checked by every consumer before it acts."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest
from eventsourcing.domain import Aggregate

from services.admissions import domain as admissions_domain
from services.admissions.application import AdmissionsApplication
from services.discharges import domain as discharges_domain
from services.discharges.application import DischargesApplication
from services.medications import domain as medications_domain
from services.medications.application import MedicationsApplication
from services.referrals import domain as referrals_domain
from services.referrals.application import ReferralsApplication
from services.referrals.domain import Priority
from services.registry import domain as registry_domain
from services.registry.application import RegistryApplication
from shared.domain import CommandContext
from shared.events import (
    BY_SOURCE,
    CONTRACT_VERSIONS,
    DOWNCASTS,
    PAYLOADS,
    UPCASTS,
    ContractError,
    Envelope,
    current_payload,
    downcast,
    parse,
)
from shared.events import registry as registry_events
from shared.events.admissions import PatientAdmitted, PatientAdmittedV1
from shared.events.discharges import PatientDischarged
from shared.events.doc import render
from shared.events.envelope import upcast
from shared.outbox import read_envelopes
from shared.store import CarepathApplication
from tests.conftest import GP
from tests.support import ROOT
from tests.wire import (
    MALFORMATIONS,
    NOW,
    PATIENT,
    Malformation,
    admitted,
    discharged,
    envelope,
    malformed,
)

SERVICES: list[tuple[type[CarepathApplication], ModuleType]] = [
    (ReferralsApplication, referrals_domain),
    (AdmissionsApplication, admissions_domain),
    (DischargesApplication, discharges_domain),
    (MedicationsApplication, medications_domain),
    (RegistryApplication, registry_domain),
]


def domain_event_names(domain: ModuleType) -> set[str]:
    """Every event class of every aggregate of a domain module."""
    names = set()
    for aggregate in vars(domain).values():
        if isinstance(aggregate, type) and issubclass(aggregate, Aggregate):
            if aggregate.__module__ != domain.__name__:
                continue
            names |= {
                name
                for name, cls in vars(aggregate).items()
                if isinstance(cls, type)
                and issubclass(cls, Aggregate.Event)
                and name not in {"Event", "Created"}
            }
    return names


@pytest.mark.parametrize(("app", "domain"), SERVICES, ids=lambda s: getattr(s, "name", ""))
def test_every_published_domain_event_has_its_mapping_to_the_contract(
    app: type[CarepathApplication], domain: ModuleType
) -> None:
    published = domain_event_names(domain) - app.internal_event_types
    assert published, "the domain module declares events"
    assert set(app.contract) == published, "map each published event in services/<svc>/contract.py"


@pytest.mark.parametrize(("app", "domain"), SERVICES, ids=lambda s: getattr(s, "name", ""))
def test_every_mapped_event_is_declared_in_its_services_contract(
    app: type[CarepathApplication], domain: ModuleType
) -> None:
    declared = {cls.event_type() for cls in BY_SOURCE[app.name]}
    assert set(app.contract) == declared
    for name, mapping in app.contract.items():
        assert mapping.__annotations__["return"].endswith(name)


def test_the_event_documents_are_what_the_contract_declares() -> None:
    """docs/events.md and docs/events/ are generated (`make docs`); a stale copy fails here."""
    files = render()
    for path, text in files.items():
        assert (ROOT / "docs" / path).read_text() == text, f"run `make docs` ({path})"
    on_disk = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs/events").glob("*/*")}
    assert on_disk == {p for p in files if p.startswith("events/")}, "run `make docs`"


def test_a_good_message_is_read_as_its_typed_payload() -> None:
    sent = envelope(admitted())
    received = parse(sent.to_json(), "admissions.events", "PatientAdmitted")
    assert received == sent
    assert received.payload(type(sent.data)).ward == "Medisinsk post 3"


@pytest.mark.parametrize("m", MALFORMATIONS, ids=lambda m: m.name)
def test_each_class_of_malformed_message_is_rejected_with_its_reason(m: Malformation) -> None:
    with pytest.raises(ContractError) as rejected:
        parse(malformed(m), "admissions.events", "PatientAdmitted")
    assert m.reason in str(rejected.value)


def test_a_rejection_never_repeats_the_offending_value() -> None:
    """Reasons reach logs and dead-letter headers: field and rule, never the (personal) value."""
    raw = json.loads(envelope(admitted()).to_json())
    raw["data"]["ward"] = "Pasient Kari Nordmann " * 20
    with pytest.raises(ContractError) as rejected:
        parse(json.dumps(raw), "admissions.events", "PatientAdmitted")
    assert "Nordmann" not in str(rejected.value)


def test_an_event_id_that_is_not_its_aggregate_and_version_is_rejected() -> None:
    good = envelope(admitted())
    forged = Envelope(**{**vars_of(good), "event_id": f"{good.aggregate_id}:7"})
    with pytest.raises(ContractError, match="event_id must be"):
        parse(forged.to_json(), "admissions.events", "PatientAdmitted")


def vars_of(e: Envelope) -> dict[str, object]:
    return {name: getattr(e, name) for name in e.__dataclass_fields__}


def test_the_read_models_own_copy_reads_back_as_the_same_typed_event() -> None:
    sent = envelope(admitted())
    assert Envelope.from_stored(sent.to_json()) == sent


def test_an_older_version_is_upcast_before_it_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hook itself, with a made-up version 0 before PatientDischarged's version 1 (which
    is upcast on to version 2: no Melding om utskrevet pasient was tracked then)."""

    def from_v0(raw: dict[str, Any]) -> dict[str, Any]:
        data = dict(raw["data"])
        data["destination"] = data.pop("to")
        return {**raw, "schema_version": 1, "data": data}

    monkeypatch.setitem(UPCASTS, ("discharges", "PatientDischarged", 0), from_v0)
    raw = json.loads(envelope(discharged()).to_json())
    raw["schema_version"] = 0
    raw["data"]["to"] = raw["data"].pop("destination")
    upcast = parse(json.dumps(raw), "discharges.events", "PatientDischarged")
    assert upcast.schema_version == 2
    assert upcast.payload(PatientDischarged).destination == "HOME"
    assert upcast.payload(PatientDischarged).notice_message_id is None


def test_a_patient_admitted_of_version_1_reads_as_version_2_with_the_home_municipality() -> None:
    """Version 2 renamed `municipality_her_id` to `home_municipality_her_id`: a version 1
    message (published or queued before) is upcast to version 2 with the same value, and the
    vendor delivery's downcast gives back the version 1 message exactly."""
    sent = envelope(admitted())
    as_v2 = json.loads(sent.to_json())
    assert as_v2["schema_version"] == 2
    as_v1 = downcast(as_v2, 1)
    assert as_v1["schema_version"] == 1
    assert as_v1["data"]["municipality_her_id"] == "4201"
    assert "home_municipality_her_id" not in as_v1["data"]
    PatientAdmittedV1.model_validate(as_v1["data"])  # the version 1 schema, as published then
    read = parse(json.dumps(as_v1), "admissions.events", "PatientAdmitted")
    assert read == sent
    assert read.payload(PatientAdmitted).home_municipality_her_id == "4201"
    assert upcast(downcast(as_v2, 1)) == as_v2


@pytest.mark.parametrize("event_type", ["OrganisationRegistered", "OrganisationChanged"])
def test_a_directory_event_of_version_1_reads_as_version_2_without_an_orgnr(
    event_type: str,
) -> None:
    """Version 2 added `orgnr`: a version 1 message (published or stored before) is upcast,
    and an organisation number with a wrong check digit is refused."""
    fields = {"kind": "MUNICIPALITY", "name": "Fjordvik kommune", "parent_her_id": None}
    if event_type == "OrganisationRegistered":
        fields["her_id"] = "4201"
    cls = getattr(registry_events, event_type)
    sent = envelope(cls(**fields, orgnr="883016610"), patient={})
    raw = json.loads(sent.to_json())
    assert raw["schema_version"] == 2
    raw["schema_version"] = 1
    del raw["data"]["orgnr"]
    for read in (
        parse(json.dumps(raw), "registry.events", event_type),
        Envelope.from_stored(json.dumps(raw)),
    ):
        assert read.schema_version == 2
        assert read.payload(cls).orgnr is None
        assert read.payload(cls).name == "Fjordvik kommune"
    raw = json.loads(sent.to_json())
    raw["data"]["orgnr"] = "883016611"
    with pytest.raises(ContractError, match=r"data\.orgnr"):
        parse(json.dumps(raw), "registry.events", event_type)


def test_an_unmapped_domain_event_is_never_published(monkeypatch: pytest.MonkeyPatch) -> None:
    """A domain event the service forgot to map stops at the relay with the reason (the relay
    keeps its position and retries; nothing unchecked goes out)."""
    app = ReferralsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.send_referral(
        CommandContext("s1", NOW, GP, "corr"), PATIENT, "59", "Smerter", Priority.ROUTINE, None
    )
    monkeypatch.setattr(app, "contract", {})
    with pytest.raises(
        ContractError, match="no contract mapping for its domain event ReferralSent"
    ):
        read_envelopes("referrals", app, 0, 10)


def test_the_read_models_stored_copy_of_a_version_1_patient_admitted_reads_as_version_2() -> None:
    """The projector keeps each envelope as it was checked; one kept before version 2 reads as
    version 2 when a patient's history is folded again."""
    sent = envelope(admitted())
    kept_before = json.dumps(downcast(json.loads(sent.to_json()), 1))
    assert Envelope.from_stored(kept_before) == sent


def test_every_served_contract_version_can_be_reached_by_downcasts() -> None:
    """Each older schema version a vendor contract version names has a chain of downcasts
    from the newest, and its payload class is declared (its schema is in docs/events/)."""
    for version, older in CONTRACT_VERSIONS.items():
        for (source, event_type), schema_version in older.items():
            newest = current_payload(source, event_type).schema_version
            assert schema_version < newest, (version, event_type)
            for step in range(schema_version + 1, newest + 1):
                assert (source, event_type, step) in DOWNCASTS, (version, event_type, step)
            assert (source, event_type, schema_version) in PAYLOADS
