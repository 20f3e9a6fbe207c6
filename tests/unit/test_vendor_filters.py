"""What a vendor subscription receives, decided without I/O (services/streams/filters.py):
which events it wants, which patients its served organisations may see, and the event as its
purpose and its free-text choice allow; and the subscription's own rules."""

from __future__ import annotations

import json

import pytest

from services.streams.application import StreamsApplication
from services.streams.domain import Organisation, Subscription, SubscriptionState
from services.streams.filters import Route, free_text_paths, minimised, seen_by, vendor_body
from services.streams.purposes import PURPOSES, SubscriptionPurpose
from shared.access.model import Basis, Purpose
from shared.actors import Actor, OrgKind
from shared.errors import AlreadyExists, InvalidArgument, InvalidTransition
from shared.events import CURRENT_CONTRACT, PAYLOADS, Envelope
from shared.events.admissions import PatientAdmitted, PatientAdmittedV1
from shared.events.medications import MedicationPrescribed
from shared.events.referrals import ReferralReceiptRecorded
from shared.events.registry import AccessBlocked, FastlegeAssigned
from shared.ids import FNR_SYSTEM
from tests.support import ctx, make_fnr

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(12, 3, 42, 480)}
KEY = f"{PATIENT['system']}|{PATIENT['value']}"
FJORDVIK = Organisation("4201", "MUNICIPALITY", "Fjordvik kommune")
NORDKYST = Organisation("4301", "MUNICIPALITY", "Nordkyst kommune")
VENDOR = Organisation("7766001", "REGISTRY", "Fjordvik EPJ AS", "923609016")
OPERATOR = Actor("112374", OrgKind.REGISTRY, roles=frozenset({"OPERATOR"}))
ENTRY = "5b0f6a4e-2b51-4d8e-9a65-0c1f6a3e9d11"


def envelope(data: object, patient: dict[str, str] = PATIENT, hpr: str = "1203921") -> Envelope:
    return Envelope(
        event_id=f"{ENTRY}:1",
        aggregate_id=ENTRY,
        aggregate_version=1,
        patient=patient,
        occurred_at="2026-11-28T09:00:00.000000Z",
        recorded_at="2026-11-28T09:00:01.000000Z",
        actor={"her_id": "4201", "org_kind": "MUNICIPALITY", "hpr": hpr},
        correlation_id="c1",
        causation_id="c1",
        data=data,  # type: ignore[arg-type]
    )


PRESCRIBED = envelope(
    MedicationPrescribed.model_validate(
        {
            "entry_id": ENTRY,
            "medication": {"atc_code": "A10BA02", "name": "Metformin"},
            "dose": "500 mg x 2",
            "reason": "Diabetes type 2, følges opp av hjemmesykepleien",
            "source_her_id": "4201",
            "source_kind": "MUNICIPALITY",
        }
    )
)


def route(
    purpose: SubscriptionPurpose = SubscriptionPurpose.HEALTH_CARE,
    free_text: bool = False,
    event_types: frozenset[str] = frozenset(),
    sources: frozenset[str] = frozenset(),
    served: tuple[Organisation, ...] = (FJORDVIK,),
    state: SubscriptionState = SubscriptionState.ACTIVE,
    contract_version: int = CURRENT_CONTRACT,
) -> Route:
    return Route(
        "fjordvik-ehr", "vendor.fjordvik-ehr", VENDOR, purpose, event_types, sources, served,
        free_text, state, contract_version,
    )  # fmt: skip


def test_every_free_text_field_of_the_contract_is_known_to_the_minimiser() -> None:
    """Reasons, notes, descriptions and AppRec error texts: clinical free text wherever the
    contract declares it (a new Text field is found without a list to keep)."""
    found = {
        (cls.source, cls.event_type()): list(free_text_paths(cls))
        for cls in PAYLOADS.values()
        if list(free_text_paths(cls))
    }
    assert found[("medications", "MedicationPrescribed")] == [("reason",)]
    assert found[("medications", "MedicationListReconciled")] == [("note",)]
    assert found[("referrals", "ReferralSent")] == [("reason",)]
    assert found[("referrals", "ReferralReceiptRecorded")] == [("errors", "*", "description")]
    assert found[("pathway", "DeadlineBreached")] == [("description",)]
    assert ("registry", "FastlegeAssigned") not in found


def test_a_record_system_without_free_text_gets_the_patient_and_the_prescriber_not_the_reason() -> (
    None
):
    message, omitted = minimised(PRESCRIBED, route())
    assert message["patient"] == PATIENT
    assert message["actor"]["hpr"] == "1203921"
    assert "reason" not in message["data"]
    assert message["data"]["medication"]["name"] == "Metformin"
    assert omitted == ["data.reason"]


def test_service_planning_never_gets_who_but_may_get_the_free_text() -> None:
    message, omitted = minimised(
        PRESCRIBED, route(SubscriptionPurpose.SERVICE_PLANNING, free_text=True)
    )
    assert message["patient"] == {}
    assert "hpr" not in message["actor"]
    assert message["data"]["reason"].startswith("Diabetes")
    assert omitted == ["patient", "actor.hpr"]


def test_hpr_numbers_in_the_data_go_where_the_purpose_has_no_need_of_them() -> None:
    assigned = envelope(
        FastlegeAssigned(gp_her_id="8134021", gp_hpr="9144900", valid_from="2020-01-01",
                         valid_to=None),
    )  # fmt: skip
    coordination, omitted = minimised(assigned, route(SubscriptionPurpose.CARE_COORDINATION))
    assert "gp_hpr" not in coordination["data"] and "data.gp_hpr" in omitted
    record, _ = minimised(assigned, route(SubscriptionPurpose.HEALTH_CARE))
    assert record["data"]["gp_hpr"] == "9144900"


def test_an_apprecs_error_texts_are_left_out_and_its_codes_kept() -> None:
    receipt = envelope(
        ReferralReceiptRecorded.model_validate(
            {
                "receiver_her_id": "59",
                "status": "OK_ERROR_IN_PART",
                "errors": [{"code": "E35", "description": "Pasienten har reservert seg"}],
            }
        )
    )
    message, omitted = minimised(receipt, route())
    assert message["data"]["errors"] == [{"code": "E35"}]
    assert omitted == ["data.errors.*.description"]


def test_the_vendor_message_carries_its_position_subscription_and_contract() -> None:
    body, _ = vendor_body(PRESCRIBED, route(), 42)
    assert (body["position"], body["subscription"], body["contract"]) == (
        42, "fjordvik-ehr", f"carepath.vendor/{CURRENT_CONTRACT}",
    )  # fmt: skip
    assert body["event_id"] == PRESCRIBED.event_id
    assert body["schema_version"] == 1


ADMITTED = envelope(
    PatientAdmitted(
        hospital_her_id="59",
        ward="Medisinsk post 3",
        admission_type="ACUTE",
        referral_id=None,
        home_municipality_her_id="4201",
        municipal_services_likely=True,
        existing_service_user=False,
    )
)


def test_a_subscription_on_contract_version_2_gets_patient_admitted_version_2() -> None:
    body, _ = vendor_body(ADMITTED, route(contract_version=2), 7)
    assert (body["contract"], body["schema_version"]) == ("carepath.vendor/2", 2)
    assert body["data"]["home_municipality_her_id"] == "4201"
    assert "municipality_her_id" not in body["data"]


def test_a_subscription_on_contract_version_1_gets_patient_admitted_as_version_1() -> None:
    """The delivery downcasts for a subscription on an older contract version; event types
    that did not change between the versions are delivered as they are."""
    body, _ = vendor_body(ADMITTED, route(contract_version=1), 7)
    assert (body["contract"], body["schema_version"]) == ("carepath.vendor/1", 1)
    assert body["data"]["municipality_her_id"] == "4201"
    assert "home_municipality_her_id" not in body["data"]
    PatientAdmittedV1.model_validate(body["data"])
    unchanged, _ = vendor_body(PRESCRIBED, route(contract_version=1), 8)
    assert (unchanged["contract"], unchanged["schema_version"]) == ("carepath.vendor/1", 1)
    assert unchanged["data"] == vendor_body(PRESCRIBED, route(contract_version=2), 8)[0]["data"]


def test_a_subscription_wants_its_event_types_and_sources_and_never_a_patients_blocks() -> None:
    assert route().wants(PRESCRIBED)
    assert route(event_types=frozenset({"MedicationPrescribed"})).wants(PRESCRIBED)
    assert not route(event_types=frozenset({"PatientAdmitted"})).wants(PRESCRIBED)
    assert not route(sources=frozenset({"admissions"})).wants(PRESCRIBED)
    assert route(sources=frozenset({"medications"})).wants(PRESCRIBED)
    # paused: still wanted (it waits in the vendor's queue); deleted: not
    assert route(state=SubscriptionState.PAUSED).wants(PRESCRIBED)
    assert not route(state=SubscriptionState.DELETED).wants(PRESCRIBED)
    blocked = envelope(AccessBlocked(block_id=ENTRY, her_id="4201", hpr=None))
    assert not route().wants(blocked)


def test_a_patient_is_seen_through_the_first_served_organisation_that_may_see_them() -> None:
    both = route(served=(FJORDVIK, NORDKYST))
    visible = {"4301": {KEY: Basis.TEMPORARY_RESIDENCE_MUNICIPALITY}}
    assert seen_by(both, KEY, visible) == (NORDKYST, Basis.TEMPORARY_RESIDENCE_MUNICIPALITY)
    # a block of Fjordvik (or no relationship) leaves the patient out of Fjordvik's members
    assert seen_by(route(), KEY, visible) is None
    # a block of the vendor's own organisation holds whoever it serves
    assert seen_by(both, KEY, visible, vendor_blocked=frozenset({KEY})) is None


def test_each_purpose_has_its_source_and_an_audit_purpose() -> None:
    for purpose in SubscriptionPurpose:
        rule = PURPOSES[purpose]
        assert rule.source and rule.means
        assert Purpose(rule.audit_purpose).value == rule.audit_purpose


# --- the subscription's own rules ---------------------------------------------------------------


@pytest.fixture
def app(tmp_path: object) -> StreamsApplication:
    return StreamsApplication.from_url(f"sqlite:///{tmp_path}/streams.sqlite")


def create(app: StreamsApplication, command_id: str, name: str = "fjordvik-ehr") -> Subscription:
    return app.create_subscription(
        ctx(OPERATOR, command_id), name, VENDOR, SubscriptionPurpose.HEALTH_CARE,
        ["PatientAdmitted"], [], [FJORDVIK], False,
    )  # fmt: skip


def test_a_subscription_is_paused_resumed_and_deleted_each_change_an_event(
    app: StreamsApplication,
) -> None:
    create(app, "c1")
    assert (
        app.pause_subscription(ctx(OPERATOR, "c2"), "fjordvik-ehr").state
        is SubscriptionState.PAUSED
    )
    assert (
        app.resume_subscription(ctx(OPERATOR, "c3"), "fjordvik-ehr").state
        is SubscriptionState.ACTIVE
    )
    deleted = app.delete_subscription(ctx(OPERATOR, "c4"), "fjordvik-ehr")
    assert (deleted.state, deleted.version) == (SubscriptionState.DELETED, 4)
    assert app.subscriptions() == []
    assert [s.name for s in app.subscriptions(include_deleted=True)] == ["fjordvik-ehr"]
    with pytest.raises(InvalidTransition):
        app.resume_subscription(ctx(OPERATOR, "c5"), "fjordvik-ehr")


def test_a_name_is_taken_once_and_a_retried_creation_returns_the_first(
    app: StreamsApplication,
) -> None:
    first = create(app, "c1")
    assert create(app, "c1").version == first.version
    with pytest.raises(AlreadyExists) as caught:
        create(app, "c2")
    assert caught.value.field == "name"


@pytest.mark.parametrize("name", ["Fjordvik", "ab", "vendor.x", "-x", "a" * 41])
def test_a_name_must_be_fit_for_a_queue_and_a_broker_user(
    app: StreamsApplication, name: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        create(app, "c1", name)
    assert caught.value.field == "name"


def test_a_subscription_receives_the_current_contract_version_unless_it_names_one(
    app: StreamsApplication,
) -> None:
    assert create(app, "c1").contract_version == CURRENT_CONTRACT
    older = app.create_subscription(
        ctx(OPERATOR, "c2"), "nordkyst-ehr", VENDOR, SubscriptionPurpose.HEALTH_CARE, [], [],
        [NORDKYST], False, 1,
    )  # fmt: skip
    assert app.get_subscription("nordkyst-ehr").contract_version == older.contract_version == 1
    assert Route.of(older).contract_version == 1


@pytest.mark.parametrize("version", [4, 99])
def test_a_contract_version_carepath_does_not_serve_is_refused(
    app: StreamsApplication, version: int
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        app.create_subscription(
            ctx(OPERATOR, "c1"), "fjordvik-ehr", VENDOR, SubscriptionPurpose.HEALTH_CARE, [], [],
            [FJORDVIK], False, version,
        )  # fmt: skip
    assert caught.value.field == "contract_version"


def test_a_subscription_stored_before_versions_were_stated_receives_version_1(
    app: StreamsApplication,
) -> None:
    """Its SubscriptionCreated has no `contract_version`: it was delivered PatientAdmitted
    version 1, and goes on so until the operator creates it anew."""
    create(app, "c1")
    with app.recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        cursor.execute("SELECT state FROM stored_events WHERE originator_version = 1")
        (state,) = cursor.fetchone()
        stored = json.loads(state)
        del stored["contract_version"]
        cursor.execute(
            "UPDATE stored_events SET state = ? WHERE originator_version = 1",
            (json.dumps(stored).encode(),),
        )
    assert app.get_subscription("fjordvik-ehr").contract_version == 1
