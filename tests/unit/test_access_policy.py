"""The access policy decides alone, from the facts it is given (no I/O): default deny, the
caller's kind, person and roles, blocks, and the grounds of access with their time bounds."""

from __future__ import annotations

import pytest

from carepath.v1 import (
    admissions_pb2,
    correspondence_pb2,
    discharges_pb2,
    medications_pb2,
    municipal_pb2,
    pathway_pb2,
    referrals_pb2,
    registry_pb2,
    streams_pb2,
)
from shared.access.doc import render
from shared.access.model import OPERATOR_ROLE, Basis, Relationship
from shared.access.policy import EmergencyGrant, Facts, decide
from shared.access.table import RULES, rule_for
from shared.actors import Actor, OrgKind
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_GP, OTHER_MUNICIPALITY
from tests.support import ROOT, make_fnr

PATIENT = {"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": make_fnr(12, 3, 42, 480)}
NOW = "2026-11-29T12:00:00.000000Z"
YESTERDAY = "2026-11-28T12:00:00.000000Z"
LAST_YEAR = "2025-11-29T12:00:00.000000Z"


def rule(name: str):  # type: ignore[no-untyped-def]
    found = rule_for(f"/carepath.v1.{name}")
    assert found is not None, name
    return found


def related(actor: Actor, basis: Basis, since: str = LAST_YEAR, until: str | None = None) -> Facts:
    return Facts(relationships=[Relationship(actor.her_id, basis, since, until)])


def test_every_call_of_every_service_has_exactly_one_rule() -> None:
    """Default deny is only safe when nothing is forgotten: every RPC of the contract has a
    rule, and no rule names a call that does not exist."""
    calls = {
        f"/{service.full_name}/{method.name}"
        for module in (
            referrals_pb2,
            admissions_pb2,
            correspondence_pb2,
            discharges_pb2,
            medications_pb2,
            municipal_pb2,
            pathway_pb2,
            registry_pb2,
            streams_pb2,
        )
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert set(RULES) == calls


def test_the_access_document_is_what_the_table_says() -> None:
    """docs/access.md is printed from the table (`make docs`); a stale copy fails here."""
    assert (ROOT / "docs" / "access.md").read_text() == render(), "run `make docs`"


def test_a_call_without_a_relationship_is_refused() -> None:
    decision = decide(rule("PathwayService/GetPathway"), OTHER_GP, PATIENT, Facts(), NOW)
    assert not decision.allowed and decision.basis is None


def test_the_patients_fastlege_reads_the_pathway_on_that_basis() -> None:
    decision = decide(
        rule("PathwayService/GetPathway"), GP, PATIENT, related(GP, Basis.FASTLEGE), NOW
    )
    assert decision.allowed and decision.basis is Basis.FASTLEGE


def test_a_relationship_counts_only_while_it_holds() -> None:
    get = rule("PathwayService/GetPathway")
    ended = related(GP, Basis.FASTLEGE, until=YESTERDAY)
    assert not decide(get, GP, PATIENT, ended, NOW).allowed
    later = related(GP, Basis.FASTLEGE, since="2027-01-01T00:00:00.000000Z")
    assert not decide(get, GP, PATIENT, later, NOW).allowed


def test_another_organisations_relationship_gives_the_caller_nothing() -> None:
    facts = related(MUNICIPALITY, Basis.RESIDENCE_MUNICIPALITY)
    get = rule("PathwayService/GetPathway")
    assert not decide(get, OTHER_MUNICIPALITY, PATIENT, facts, NOW).allowed


def test_a_relationship_the_call_is_not_for_gives_nothing() -> None:
    """A GP that sent a referral may read the pathway, but may not prescribe on that alone."""
    facts = related(OTHER_GP, Basis.REFERRAL_SENDER)
    assert decide(rule("PathwayService/GetPathway"), OTHER_GP, PATIENT, facts, NOW).allowed
    prescribe = rule("MedicationService/PrescribeMedication")
    assert not decide(prescribe, OTHER_GP, PATIENT, facts, NOW).allowed


def test_a_caller_kind_the_call_is_not_for_is_refused_whatever_its_relationships() -> None:
    facts = related(MUNICIPALITY, Basis.RESIDENCE_MUNICIPALITY)
    send = rule("ReferralService/SendReferral")
    assert not decide(send, MUNICIPALITY, PATIENT, facts, NOW).allowed


def test_person_level_reads_need_an_hpr_unless_a_named_system_role_reads() -> None:
    get = rule("MedicationService/GetMedicationList")
    system = Actor(her_id=GP.her_id, org_kind=OrgKind.GP)
    facts = related(system, Basis.FASTLEGE)
    assert not decide(get, system, PATIENT, facts, NOW).allowed
    epj = Actor(her_id=GP.her_id, org_kind=OrgKind.GP, roles=frozenset({"EPJ_INTEGRATION"}))
    assert decide(get, epj, PATIENT, facts, NOW).allowed
    # a system role never writes clinical decisions without a person
    prescribe = rule("MedicationService/PrescribeMedication")
    assert not decide(prescribe, epj, PATIENT, facts, NOW).allowed


def test_a_block_refuses_reads_and_the_shared_list_but_not_the_stays_own_commands() -> None:
    facts = Facts(
        relationships=[Relationship(HOSPITAL.her_id, Basis.STAY_HOSPITAL, LAST_YEAR)],
        blocked=True,
    )
    assert not decide(rule("PathwayService/GetPathway"), HOSPITAL, PATIENT, facts, NOW).allowed
    assert not decide(rule("MedicationService/ChangeDose"), HOSPITAL, PATIENT, facts, NOW).allowed
    assert decide(rule("AdmissionService/CloseStay"), HOSPITAL, PATIENT, facts, NOW).allowed


def test_a_block_holds_against_emergency_access_too() -> None:
    grant = EmergencyGrant(YESTERDAY, NOW, "LIFE_THREATENING", "bevisstløs")
    get = rule("PathwayService/GetPathway")
    assert decide(get, OTHER_GP, PATIENT, Facts(emergency=grant), NOW).basis is Basis.EMERGENCY
    assert not decide(get, OTHER_GP, PATIENT, Facts(emergency=grant, blocked=True), NOW).allowed
    request = rule("AccessService/RequestEmergencyAccess")
    assert decide(request, OTHER_GP, PATIENT, Facts(), NOW).basis is Basis.EMERGENCY
    assert not decide(request, OTHER_GP, PATIENT, Facts(blocked=True), NOW).allowed


def test_emergency_access_needs_a_health_professional() -> None:
    request = rule("AccessService/RequestEmergencyAccess")
    nobody = Actor(her_id=OTHER_GP.her_id, org_kind=OrgKind.GP)
    assert not decide(request, nobody, PATIENT, Facts(), NOW).allowed


@pytest.mark.parametrize(
    ("call", "allowed"),
    [
        ("PathwayService/GetPathway", True),
        ("AccessService/ListAccesses", True),
        ("AccessService/BlockAccess", True),
        ("RegistryService/GetRegistration", True),
        ("MedicationService/GetMedicationList", False),
        ("ReferralService/SendReferral", False),
    ],
)
def test_a_citizen_reads_their_own_pathway_and_access_log_and_nothing_else(
    call: str, allowed: bool
) -> None:
    me = Actor.citizen(PATIENT["value"])
    assert decide(rule(call), me, PATIENT, Facts(), NOW).allowed is allowed
    other = Actor.citizen(make_fnr(1, 1, 90, 100))
    assert not decide(rule(call), other, PATIENT, Facts(), NOW).allowed


def test_only_the_register_adapter_records_register_facts() -> None:
    adapter = Actor(her_id="112374", org_kind=OrgKind.REGISTRY)
    record = rule("RegistryService/RecordResidence")
    assert decide(record, adapter, PATIENT, Facts(), NOW).basis is Basis.REGISTER_KEEPER
    municipality = related(MUNICIPALITY, Basis.RESIDENCE_MUNICIPALITY)
    assert not decide(record, MUNICIPALITY, PATIENT, municipality, NOW).allowed


def test_only_supervisors_review_emergency_accesses() -> None:
    review = rule("AccessService/ListEmergencyAccesses")
    assert not decide(review, HOSPITAL, None, Facts(), NOW).allowed
    supervisor = Actor(her_id="59", org_kind=OrgKind.HOSPITAL, roles=frozenset({"SUPERVISOR"}))
    assert decide(review, supervisor, None, Facts(), NOW).basis is Basis.SUPERVISOR


def test_a_municipalitys_numbers_are_its_own_and_carepaths_operators() -> None:
    """Statistics names an organisation, not a patient: the municipality itself (of the kind
    the call is about), or an operator for any; a register organisation naming itself and
    another municipality are refused."""
    statistics = rule("PathwayService/Statistics")
    operator = Actor(her_id="112374", org_kind=OrgKind.REGISTRY, roles=frozenset({"OPERATOR"}))
    register = Actor(her_id="112374", org_kind=OrgKind.REGISTRY)

    def asks(actor: Actor, her_id: str) -> tuple[bool, Basis | None]:
        decision = decide(
            statistics, actor, None, Facts(organisation=her_id), NOW, frozenset({"112374"})
        )
        return decision.allowed, decision.basis

    assert asks(MUNICIPALITY, MUNICIPALITY.her_id) == (True, Basis.OWN_ORGANISATION)
    assert asks(OTHER_MUNICIPALITY, MUNICIPALITY.her_id) == (False, None)
    assert asks(operator, MUNICIPALITY.her_id) == (True, Basis.OPERATOR)
    vendor = Actor(her_id="7766001", org_kind=OrgKind.REGISTRY, roles=frozenset({"OPERATOR"}))
    assert asks(vendor, MUNICIPALITY.her_id) == (False, None)  # the role, not carepath's own
    assert asks(register, register.her_id) == (False, None)
    assert asks(HOSPITAL, HOSPITAL.her_id) == (False, None)


def test_the_municipality_and_the_fastlege_write_to_each_other_on_their_register_relationship() -> (
    None
):
    send = rule("CorrespondenceService/SendMessage")
    for actor, basis in ((GP, Basis.FASTLEGE), (MUNICIPALITY, Basis.RESIDENCE_MUNICIPALITY)):
        decision = decide(send, actor, PATIENT, related(actor, basis), NOW)
        assert decision.allowed and decision.basis is basis
    assert not decide(
        send, OTHER_GP, PATIENT, related(OTHER_GP, Basis.REFERRAL_SENDER), NOW
    ).allowed
    assert not decide(send, HOSPITAL, PATIENT, related(HOSPITAL, Basis.STAY_HOSPITAL), NOW).allowed
    answer = rule("CorrespondenceService/AnswerRequest")
    receiver = Facts(relationships=[Relationship.party(GP.her_id, Basis.MESSAGE_RECEIVER)])
    assert decide(answer, GP, PATIENT, receiver, NOW).allowed
    assert not decide(answer, GP, PATIENT, related(GP, Basis.FASTLEGE), NOW).allowed


def test_the_operator_role_counts_only_in_carepaths_own_organisations_token() -> None:
    """A token issuer that wrongly gives a vendor the OPERATOR role makes it no operator:
    the subscriptions are managed by carepath's own operating organisations alone."""
    manage = rule("SubscriptionAdminService/CreateSubscription")
    operators = frozenset({"112374"})
    carepath = Actor("112374", OrgKind.REGISTRY, roles=frozenset({OPERATOR_ROLE}))
    vendor = Actor("7766001", OrgKind.REGISTRY, roles=frozenset({OPERATOR_ROLE}))
    assert decide(manage, carepath, None, Facts(), NOW, operators).allowed
    refused = decide(manage, vendor, None, Facts(), NOW, operators)
    assert not refused.allowed and "own operating organisation" in refused.reason
    assert not decide(manage, carepath, None, Facts(), NOW).allowed  # none named: no one
