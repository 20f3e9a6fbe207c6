"""Need to know, told as the stories of issue 8, on the real system (every gRPC server, the
broker, the projector; SQLite and PostgreSQL): the two takeover routes that no longer work, the
patient's blocks, emergency access and its review, the citizen reading their own pathway and who
looked, and the audit of every call — allowed or refused, found or not."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import grpc
import pytest

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    discharges_pb2,
    discharges_pb2_grpc,
    medications_pb2,
    medications_pb2_grpc,
    pathway_pb2,
    pathway_pb2_grpc,
    referrals_pb2,
    referrals_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from shared.access.enforce import REFUSAL
from shared.access.model import Basis
from shared.actors import Actor, OrgKind
from shared.ids import FNR_SYSTEM
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_GP, OTHER_MUNICIPALITY
from tests.support import REGISTER_ADAPTER, Harness, auth, make_fnr, meta, wait_for

FNR = make_fnr(4, 4, 44, 120)
PATIENT = {"system": FNR_SYSTEM, "value": FNR}
PB = common_pb2.PatientIdentifier(**PATIENT)
CARE = common_pb2.ACCESS_PURPOSE_CARE_COORDINATION


class Clients:
    def __init__(self, system: Harness) -> None:
        self.system = system
        self.pathway = pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server))
        self.referrals = referrals_pb2_grpc.ReferralServiceStub(
            system.channel(system.referrals_server)
        )
        self.admissions = admissions_pb2_grpc.AdmissionServiceStub(
            system.channel(system.servers["admissions"])
        )
        self.medications = medications_pb2_grpc.MedicationServiceStub(
            system.channel(system.servers["medications"])
        )
        registry = system.channel(system.servers["registry"])
        self.registry = registry_pb2_grpc.RegistryServiceStub(registry)
        self.access = registry_pb2_grpc.AccessServiceStub(registry)

    def read(self, actor: Actor, patient: common_pb2.PatientIdentifier = PB) -> Any:
        return self.pathway.GetPathway(
            pathway_pb2.GetPathwayRequest(patient=patient, purpose=CARE), metadata=auth(actor)
        )

    def worklist(self, municipality: Actor) -> list[str]:
        reply = self.pathway.ListPathways(
            pathway_pb2.ListPathwaysRequest(municipality_her_id=municipality.her_id, purpose=CARE),
            metadata=auth(municipality),
        )
        return [item.patient.value for item in reply.items]

    def admit(self, municipality: str = MUNICIPALITY.her_id) -> admissions_pb2.Stay:
        return self.admissions.AdmitPatient(
            admissions_pb2.AdmitPatientRequest(
                metadata=meta(hours=-2),
                patient=PB,
                ward="Medisinsk sengepost 3",
                admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
                municipality_her_id=municipality,
            ),
            metadata=auth(HOSPITAL),
        )


def refused(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert caught.value.details() == REFUSAL
    return caught.value


@pytest.fixture
def clients(system: Harness) -> Clients:
    system.register(PATIENT, municipality=MUNICIPALITY.her_id, gp=GP)
    return Clients(system)


def on_the_pathway(c: Clients, actor: Actor, events: int) -> Callable[[], Any]:
    def check() -> Any:
        try:
            reply = c.read(actor)
        except grpc.RpcError:
            return None
        return reply if len(reply.timeline) >= events else None

    return check


def test_a_medication_command_from_another_municipality_takes_nothing_over(
    clients: Clients,
) -> None:
    """Before: one command from another municipality moved the patient onto its worklist and
    locked the real one out. Now it is refused, and nothing moves."""
    c = clients
    c.admit()
    wait_for(on_the_pathway(c, MUNICIPALITY, 1), what="the stay on the pathway")
    refused(
        lambda: c.medications.PrescribeMedication(
            medications_pb2.PrescribeMedicationRequest(
                metadata=meta(),
                patient=PB,
                medication=medications_pb2.Medication(atc_code="N02BE01", name="Paracetamol"),
                dose="1 g x 4",
            ),
            metadata=auth(OTHER_MUNICIPALITY),
        )
    )
    assert FNR in c.worklist(MUNICIPALITY)
    assert FNR not in c.worklist(OTHER_MUNICIPALITY)
    assert c.read(MUNICIPALITY).municipality_her_id == MUNICIPALITY.her_id
    refused(lambda: c.read(OTHER_MUNICIPALITY))


def test_an_admission_naming_another_municipality_takes_nothing_over(clients: Clients) -> None:
    """Before: an admission naming another municipality made it the patient's home. Now the
    registers decide: the named municipality gets nothing from the admission itself."""
    c = clients
    c.admit(municipality=OTHER_MUNICIPALITY.her_id)
    reply = wait_for(on_the_pathway(c, MUNICIPALITY, 1), what="the stay on the pathway")
    assert reply.municipality_her_id == MUNICIPALITY.her_id
    assert reply.access_basis == common_pb2.ACCESS_BASIS_RESIDENCE_MUNICIPALITY
    assert FNR in c.worklist(MUNICIPALITY)
    assert FNR not in c.worklist(OTHER_MUNICIPALITY)
    refused(lambda: c.read(OTHER_MUNICIPALITY))


def test_a_hospital_messaging_a_municipality_makes_it_a_receiver_while_the_stay_is_open(
    clients: Clients,
) -> None:
    """The rule that replaces the takeover: a municipality actually sent a PLO message about
    an open stay may follow the patient until discharge."""
    c = clients
    stay = c.admit(municipality=OTHER_MUNICIPALITY.her_id)
    c.admissions.SendAdmissionNotice(
        admissions_pb2.SendAdmissionNoticeRequest(metadata=meta(hours=-1), stay_id=stay.stay_id),
        metadata=auth(HOSPITAL),
    )
    c.system.wait_for_relationship(PATIENT, OTHER_MUNICIPALITY.her_id, Basis.MESSAGE_RECEIVER)
    assert c.read(OTHER_MUNICIPALITY).access_basis == common_pb2.ACCESS_BASIS_MESSAGE_RECEIVER
    assert FNR in c.worklist(OTHER_MUNICIPALITY)
    c.admissions.CloseStay(
        admissions_pb2.CloseStayRequest(
            metadata=meta(),
            stay_id=stay.stay_id,
            reason=admissions_pb2.STAY_CLOSE_REASON_DISCHARGED,
        ),
        metadata=auth(HOSPITAL),
    )

    def gone() -> bool:
        return FNR not in c.worklist(OTHER_MUNICIPALITY)

    wait_for(gone, what="the receiver's access to end with the stay")
    refused(lambda: c.read(OTHER_MUNICIPALITY))


def block(c: Clients, by: Actor, **party: str) -> registry_pb2.AccessBlocks:
    return c.access.BlockAccess(
        registry_pb2.BlockAccessRequest(metadata=meta(), patient=PB, **party), metadata=auth(by)
    )


def test_a_patient_blocks_their_fastlege_and_lifts_the_block_again(clients: Clients) -> None:
    c = clients
    me = Actor.citizen(FNR)
    c.admit()
    wait_for(on_the_pathway(c, GP, 1), what="the fastlege reading the pathway")
    blocks = block(c, me, her_id=GP.her_id)
    (held,) = blocks.blocks

    def blocked() -> bool:
        try:
            c.read(GP)
        except grpc.RpcError as exc:
            return exc.code() == grpc.StatusCode.PERMISSION_DENIED
        return False

    wait_for(blocked, what="the block to reach the policy")
    refused(lambda: c.read(GP))
    assert c.read(MUNICIPALITY).timeline  # only the blocked party is refused
    lifted = c.access.LiftBlock(
        registry_pb2.LiftBlockRequest(metadata=meta(), patient=PB, block_id=held.block_id),
        metadata=auth(me),
    )
    assert lifted.blocks[0].HasField("lifted_at")
    wait_for(on_the_pathway(c, GP, 1), what="the fastlege reading again")
    kinds = [r.call for r in c.system.audit_rows(PATIENT)[:50]]
    assert "AccessService/BlockAccess" in kinds and "AccessService/LiftBlock" in kinds


def test_a_blocked_health_professional_is_refused_though_the_office_is_not(
    clients: Clients,
) -> None:
    c = clients
    c.admit()
    wait_for(on_the_pathway(c, GP, 1), what="the fastlege reading the pathway")
    block(c, REGISTER_ADAPTER, hpr_number=GP.hpr or "")  # on the patient's behalf
    colleague = Actor(her_id=GP.her_id, org_kind=OrgKind.GP, hpr="3344556")

    def person_blocked() -> bool:
        try:
            c.read(GP)
        except grpc.RpcError:
            return True
        return False

    wait_for(person_blocked, what="the block of the person to reach the policy")
    assert c.read(colleague).access_basis == common_pb2.ACCESS_BASIS_FASTLEGE


def test_emergency_access_is_time_limited_flagged_reviewed_and_shown_to_the_patient(
    clients: Clients,
) -> None:
    c = clients
    c.admit()
    wait_for(on_the_pathway(c, MUNICIPALITY, 1), what="the stay on the pathway")
    refused(lambda: c.read(OTHER_GP))
    grant = c.access.RequestEmergencyAccess(
        registry_pb2.RequestEmergencyAccessRequest(
            patient=PB,
            reason=common_pb2.EMERGENCY_REASON_PATIENT_CANNOT_CONSENT,
            justification="Funnet bevisstløs på legevakt, trenger legemiddelliste.",
        ),
        metadata=auth(OTHER_GP),
    )
    assert grant.expires_at.seconds - grant.granted_at.seconds == 4 * 3600
    reply = c.read(OTHER_GP)
    assert reply.access_basis == common_pb2.ACCESS_BASIS_EMERGENCY
    # the organisation's supervisor reviews it; others may not
    supervisor = Actor(OTHER_GP.her_id, OrgKind.GP, hpr="2233445", roles=frozenset({"SUPERVISOR"}))
    review = c.access.ListEmergencyAccesses(
        registry_pb2.ListEmergencyAccessesRequest(), metadata=auth(supervisor)
    )
    (access,) = [a for a in review.accesses if a.patient.value == FNR]
    assert access.actor.person.hpr_number == OTHER_GP.hpr
    assert access.reason == common_pb2.EMERGENCY_REASON_PATIENT_CANNOT_CONSENT
    assert access.reads == 2  # the request and the read
    refused(
        lambda: c.access.ListEmergencyAccesses(
            registry_pb2.ListEmergencyAccessesRequest(), metadata=auth(OTHER_GP)
        )
    )
    # and the patient sees it
    seen = c.access.ListAccesses(
        registry_pb2.ListAccessesRequest(patient=PB), metadata=auth(Actor.citizen(FNR))
    )
    emergency = [a for a in seen.accesses if a.emergency]
    assert {a.call for a in emergency} == {
        "AccessService/RequestEmergencyAccess",
        "PathwayService/GetPathway",
    }
    assert all(a.actor.organisation.her_id == OTHER_GP.her_id for a in emergency)
    # without a person there is no emergency access
    refused(
        lambda: c.access.RequestEmergencyAccess(
            registry_pb2.RequestEmergencyAccessRequest(
                patient=PB, reason=common_pb2.EMERGENCY_REASON_LIFE_THREATENING, justification="x"
            ),
            metadata=auth(Actor(her_id="70707", org_kind=OrgKind.HOSPITAL)),
        )
    )


def test_a_citizen_reads_their_own_pathway_and_who_looked_and_nobody_elses(
    clients: Clients,
) -> None:
    c = clients
    me = Actor.citizen(FNR)
    c.admit()
    wait_for(on_the_pathway(c, me, 1), what="the citizen's own pathway")
    assert c.read(me).access_basis == common_pb2.ACCESS_BASIS_SELF
    c.read(MUNICIPALITY)
    refused(lambda: c.read(OTHER_MUNICIPALITY))
    other = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(5, 5, 55, 120))
    refused(lambda: c.read(me, other))
    refused(
        lambda: c.access.ListAccesses(
            registry_pb2.ListAccessesRequest(patient=other), metadata=auth(me)
        )
    )
    seen = c.access.ListAccesses(
        registry_pb2.ListAccessesRequest(patient=PB, page_size=200), metadata=auth(me)
    )
    reads = [(a.actor.organisation.her_id, a.outcome, a.by_self) for a in seen.accesses]
    assert (MUNICIPALITY.her_id, "OK", False) in reads
    assert (OTHER_MUNICIPALITY.her_id, "PERMISSION_DENIED", False) in reads
    assert ("", "OK", True) in reads  # the citizen's own reads, marked as such
    mine = next(a for a in seen.accesses if a.actor.organisation.her_id == MUNICIPALITY.her_id)
    assert mine.basis in (
        common_pb2.ACCESS_BASIS_RESIDENCE_MUNICIPALITY,
        common_pb2.ACCESS_BASIS_OWN_ORGANISATION,
    )
    assert mine.purpose in (
        common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
        common_pb2.ACCESS_PURPOSE_HEALTH_CARE,
    )


def test_every_call_is_audited_refused_not_found_and_commands_too(clients: Clients) -> None:
    c = clients
    request_id = "req-audit-1"
    with pytest.raises(grpc.RpcError) as not_found:
        c.read(GP)  # the fastlege, before anything happened: no pathway yet
    assert not_found.value.code() == grpc.StatusCode.NOT_FOUND
    refused(lambda: c.read(OTHER_GP))
    sent = c.referrals.SendReferral(
        referrals_pb2.SendReferralRequest(
            metadata=meta(),
            patient=PB,
            receiver_her_id=HOSPITAL.her_id,
            reason="Brystsmerter",
            priority=referrals_pb2.REFERRAL_PRIORITY_URGENT,
        ),
        metadata=(*auth(GP), ("x-request-id", request_id)),
    )
    rows = c.system.audit_rows(PATIENT)
    outcomes = [(r.call, r.outcome, r.actor_her_id) for r in rows[:3]]
    assert outcomes == [
        ("ReferralService/SendReferral", "OK", GP.her_id),
        ("PathwayService/GetPathway", "PERMISSION_DENIED", OTHER_GP.her_id),
        ("PathwayService/GetPathway", "NOT_FOUND", GP.her_id),
    ]
    command = rows[0]
    assert (command.request_id, command.basis, command.purpose, command.actor_hpr) == (
        request_id,
        "FASTLEGE",
        "HEALTH_CARE",
        GP.hpr,
    )
    assert rows[1].basis == ""  # refused: no basis
    # a refused caller learns nothing about whether the referral exists
    unknown = "3f8a9a0c-0000-4000-8000-000000000000"
    for referral_id in (sent.referral_id, unknown):
        refused(
            lambda referral_id=referral_id: c.referrals.GetReferral(
                referrals_pb2.GetReferralRequest(referral_id=referral_id),
                metadata=auth(OTHER_GP),
            )
        )


def test_only_the_register_adapter_records_where_a_patient_lives(clients: Clients) -> None:
    c = clients
    request = registry_pb2.RecordResidenceRequest(
        metadata=meta(),
        patient=PB,
        municipality_her_id=OTHER_MUNICIPALITY.her_id,
        valid_from=common_pb2.Date(year=2026, month=1, day=1),
    )
    for caller in (MUNICIPALITY, OTHER_MUNICIPALITY, HOSPITAL, Actor.citizen(FNR)):
        refused(lambda caller=caller: c.registry.RecordResidence(request, metadata=auth(caller)))
    moved = c.registry.RecordResidence(request, metadata=auth(REGISTER_ADAPTER))
    assert [p.municipality_her_id for p in moved.residence] == [
        MUNICIPALITY.her_id,
        OTHER_MUNICIPALITY.her_id,
    ]
    assert date(2025, 12, 31) == date(
        moved.residence[0].valid_to.year,
        moved.residence[0].valid_to.month,
        moved.residence[0].valid_to.day,
    )
    c.system.wait_for_relationship(PATIENT, OTHER_MUNICIPALITY.her_id, Basis.RESIDENCE_MUNICIPALITY)


def test_a_stay_closed_without_a_discharge_ends_the_discharges_parties_with_it(
    clients: Clients,
) -> None:
    """Ready for discharge 40 days ago, the stay closed 35 days ago without a discharge (found
    by the authorization matrix): the hospital's window after the stay has ended, so it may
    neither read nor change the discharge any more, and neither may the municipality that was
    sent the readiness notice."""
    c = clients
    stay = c.admissions.AdmitPatient(
        admissions_pb2.AdmitPatientRequest(
            metadata=meta(hours=-(45 * 24)),
            patient=PB,
            ward="Medisinsk sengepost 3",
            admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
            municipality_her_id=OTHER_MUNICIPALITY.her_id,
        ),
        metadata=auth(HOSPITAL),
    )
    discharges_app = c.system.apps["discharges"]
    discharges_app.stays.admitted(  # type: ignore[attr-defined]
        stay.stay_id, PATIENT, HOSPITAL.her_id, OTHER_MUNICIPALITY.her_id
    )
    discharges = discharges_pb2_grpc.DischargeServiceStub(
        c.system.channel(c.system.servers["discharges"])
    )
    discharges.DeclareReadyForDischarge(
        discharges_pb2.DeclareReadyForDischargeRequest(
            metadata=meta(hours=-(40 * 24)), stay_id=stay.stay_id
        ),
        metadata=auth(HOSPITAL),
    )
    closed = c.admissions.CloseStay(
        admissions_pb2.CloseStayRequest(
            metadata=meta(hours=-(35 * 24)),
            stay_id=stay.stay_id,
            reason=admissions_pb2.STAY_CLOSE_REASON_DISCHARGED,
        ),
        metadata=auth(HOSPITAL),
    )
    discharges_app.stays.closed(  # type: ignore[attr-defined]
        stay.stay_id, PATIENT, closed.version, HOSPITAL.her_id
    )

    def stay_closed_on_the_pathway() -> bool:
        reply = on_the_pathway(c, MUNICIPALITY, 1)()
        return reply is not None and any(e.event_type == "StayClosed" for e in reply.timeline)

    wait_for(stay_closed_on_the_pathway, what="the closed stay on the pathway")
    get = discharges_pb2.GetDischargeRequest(stay_id=stay.stay_id)
    for caller in (HOSPITAL, OTHER_MUNICIPALITY):
        refused(lambda caller=caller: discharges.GetDischarge(get, metadata=auth(caller)))
    refused(
        lambda: discharges.WithdrawReadiness(
            discharges_pb2.WithdrawReadinessRequest(
                metadata=meta(), stay_id=stay.stay_id, reason="Ny infeksjon"
            ),
            metadata=auth(HOSPITAL),
        )
    )
    assert discharges.GetDischarge(get, metadata=auth(MUNICIPALITY)).stay_id == stay.stay_id
