"""Every service holds every request to its bounds over gRPC: an over-long text, an over-long
list, an impossible time or a foreign page token is INVALID_ARGUMENT naming the field (never
INTERNAL), and the refused request changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from services.pathway import readmodel
from shared.actors import Actor, OrgKind
from shared.broker import Tenant
from shared.ids import FNR_SYSTEM
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_GP, OTHER_MUNICIPALITY, STORES
from tests.support import (
    REGISTER_ADAPTER,
    Harness,
    auth,
    drain_queue,
    events_in,
    make_fnr,
    meta,
    projector_queue,
    running_system,
    wait_for,
)

pytestmark = pytest.mark.broker

FIRST = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(21, 6, 48, 300))
SECOND = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(22, 7, 51, 300))
COORDINATION = common_pb2.ACCESS_PURPOSE_CARE_COORDINATION


@dataclass
class Stubs:
    referrals: referrals_pb2_grpc.ReferralServiceStub
    admissions: admissions_pb2_grpc.AdmissionServiceStub
    discharges: discharges_pb2_grpc.DischargeServiceStub
    medications: medications_pb2_grpc.MedicationServiceStub
    registry: registry_pb2_grpc.RegistryServiceStub
    access: registry_pb2_grpc.AccessServiceStub
    pathway: pathway_pb2_grpc.PathwayServiceStub


def wait_for_referrals(system: Harness, *referral_ids: str) -> None:
    """Until the read model holds the referrals (the projector is behind the broker)."""
    query = sa.select(sa.func.count()).where(readmodel.referrals.c.referral_id.in_(referral_ids))

    def projected() -> bool:
        with system.engine.connect() as conn:
            return conn.execute(query).scalar() == len(referral_ids)

    wait_for(projected, what="the referrals in the read model")


@pytest.fixture(scope="module")
def world(
    broker: Tenant, amqp_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    """Two patients of the municipality, each with a referral from their GP."""
    stores = tmp_path_factory.mktemp("stores")
    urls = {name: f"sqlite:///{stores}/{name}.sqlite" for name in STORES}
    queue = projector_queue("limits")
    with running_system(urls, broker, queue) as system:
        referrals = referrals_pb2_grpc.ReferralServiceStub(system.channel(system.referrals_server))
        sent = []
        for n, patient in enumerate((FIRST, SECOND)):
            registered = {"system": patient.system, "value": patient.value}
            system.register(registered, municipality=MUNICIPALITY.her_id, gp=GP)
            reply = referrals.SendReferral(
                referrals_pb2.SendReferralRequest(
                    metadata=meta(f"limits-send-{n}", hours=-(5 - n)),
                    patient=patient,
                    receiver_her_id=HOSPITAL.her_id,
                    reason="Langvarig hoste.",
                    priority=referrals_pb2.REFERRAL_PRIORITY_ROUTINE,
                ),
                metadata=auth(GP),
            )
            sent.append(reply.referral_id)
        wait_for_referrals(system, *sent)
        yield system
    drain_queue(amqp_uri, queue)


@pytest.fixture(scope="module")
def stubs(world: Harness) -> Stubs:
    registry = world.channel(world.servers["registry"])
    return Stubs(
        referrals=referrals_pb2_grpc.ReferralServiceStub(world.channel(world.referrals_server)),
        admissions=admissions_pb2_grpc.AdmissionServiceStub(
            world.channel(world.servers["admissions"])
        ),
        discharges=discharges_pb2_grpc.DischargeServiceStub(
            world.channel(world.servers["discharges"])
        ),
        medications=medications_pb2_grpc.MedicationServiceStub(
            world.channel(world.servers["medications"])
        ),
        registry=registry_pb2_grpc.RegistryServiceStub(registry),
        access=registry_pb2_grpc.AccessServiceStub(registry),
        pathway=pathway_pb2_grpc.PathwayServiceStub(world.channel(world.pathway_server)),
    )


def stored(world: Harness) -> dict[str, int]:
    """Every service's event count (the read model and the access facts only change by
    events, so a request that stored no event changed nothing of them either)."""
    return {name: events_in(app) for name, app in world.apps.items()}


def refused(call: Callable[..., Any], request: Message, actor: Actor) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, metadata=auth(actor))
    return raised.value


def error(code: str, description: str) -> common_pb2.AppRecError:
    return common_pb2.AppRecError(code=code, description=description)


def rejected(*errors: common_pb2.AppRecError) -> common_pb2.AppRec:
    return common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_REJECTED, errors=list(errors))


SOURCES = [medications_pb2.RECONCILIATION_SOURCE_PATIENT] * 21


#: (service, method, the request, who calls, the field refused, the bound it names)
CASES: list[tuple[str, str, Message, Actor, str, str]] = [
    # referrals: clinical text, a reason, an AppRec's description, code and error count
    ("referrals", "SendReferral", referrals_pb2.SendReferralRequest(
        metadata=meta("long-reason"), patient=FIRST, receiver_her_id=HOSPITAL.her_id,
        reason="r" * 10_001, priority=referrals_pb2.REFERRAL_PRIORITY_ROUTINE,
    ), GP, "reason", "10000 characters"),
    ("referrals", "RejectReferral", referrals_pb2.RejectReferralRequest(
        metadata=meta("long-reject"), reason="r" * 10_001,
    ), HOSPITAL, "reason", "10000 characters"),
    ("referrals", "RecordReferralReceipt", referrals_pb2.RecordReferralReceiptRequest(
        metadata=meta("huge-apprec"), receipt=rejected(error("E10", "x" * 1_000_000)),
    ), HOSPITAL, "receipt.errors[0].description", "1000 characters"),
    ("referrals", "RecordReferralReceipt", referrals_pb2.RecordReferralReceiptRequest(
        metadata=meta("long-code"), receipt=rejected(error("E" * 17, "feil")),
    ), HOSPITAL, "receipt.errors[0].code", "16 characters"),
    ("referrals", "RecordReferralReceipt", referrals_pb2.RecordReferralReceiptRequest(
        metadata=meta("many-errors"), receipt=rejected(*[error("E10", "feil")] * 51),
    ), HOSPITAL, "receipt.errors", "50 entries"),
    ("referrals", "GetReferral", referrals_pb2.GetReferralRequest(referral_id="0" * 129),
     GP, "referral_id", "128 characters"),
    # admissions: the ward, an AppRec
    ("admissions", "AdmitPatient", admissions_pb2.AdmitPatientRequest(
        metadata=meta("long-ward"), patient=FIRST, municipality_her_id=MUNICIPALITY.her_id,
        ward="w" * 201,
    ), HOSPITAL, "ward", "200 characters"),
    ("admissions", "RecordMessageReceipt", admissions_pb2.RecordMessageReceiptRequest(
        metadata=meta("adm-apprec"), receipt=rejected(error("E10", "y" * 1001)),
    ), MUNICIPALITY, "receipt.errors[0].description", "1000 characters"),
    # discharges: a reason, an AppRec
    ("discharges", "WithdrawReadiness", discharges_pb2.WithdrawReadinessRequest(
        metadata=meta("long-withdraw"), reason="r" * 1001,
    ), HOSPITAL, "reason", "1000 characters"),
    ("discharges", "RecordMessageReceipt", discharges_pb2.RecordDischargeMessageReceiptRequest(
        metadata=meta("dis-apprec"), receipt=rejected(*[error("E10", "feil")] * 51),
    ), MUNICIPALITY, "receipt.errors", "50 entries"),
    # medications: a name, a dose, a note, a list of sources, the command id
    ("medications", "PrescribeMedication", medications_pb2.PrescribeMedicationRequest(
        metadata=meta("long-name"), patient=FIRST,
        medication=medications_pb2.Medication(atc_code="A10BA02", name="n" * 201), dose="1",
    ), GP, "medication.name", "200 characters"),
    ("medications", "PrescribeMedication", medications_pb2.PrescribeMedicationRequest(
        metadata=meta("long-dose"), patient=FIRST,
        medication=medications_pb2.Medication(atc_code="A10BA02", name="Metformin"),
        dose="d" * 501,
    ), GP, "dose", "500 characters"),
    ("medications", "ReconcileMedicationList", medications_pb2.ReconcileMedicationListRequest(
        metadata=meta("long-note"), patient=FIRST,
        sources=[medications_pb2.RECONCILIATION_SOURCE_PATIENT], note="n" * 10_001,
    ), GP, "note", "10000 characters"),
    ("medications", "ReconcileMedicationList", medications_pb2.ReconcileMedicationListRequest(
        metadata=meta("many-sources"), patient=FIRST, sources=SOURCES,
    ), GP, "sources", "20 entries"),
    ("medications", "PrescribeMedication", medications_pb2.PrescribeMedicationRequest(
        metadata=common_pb2.CommandMetadata(
            command_id="c" * 129, occurred_at=meta("x").occurred_at
        ),
    ), GP, "metadata.command_id", "128 characters"),
    # registry: a name, a list of HER-ids, a justification
    ("registry", "RegisterOrganisation", registry_pb2.RegisterOrganisationRequest(
        metadata=meta("long-org"), her_id="88001", name="o" * 201,
    ), REGISTER_ADAPTER, "name", "200 characters"),
    ("registry", "ListOrganisations", registry_pb2.ListOrganisationsRequest(
        her_ids=["59"] * 501,
    ), MUNICIPALITY, "her_ids", "500 entries"),
    ("access", "RequestEmergencyAccess", registry_pb2.RequestEmergencyAccessRequest(
        patient=FIRST, justification="j" * 1001,
    ), HOSPITAL, "justification", "1000 characters"),
    # pathway: the patient query, the identifier
    ("pathway", "ListPathways", pathway_pb2.ListPathwaysRequest(
        municipality_her_id=MUNICIPALITY.her_id, patient_query="1" * 12, purpose=COORDINATION,
    ), MUNICIPALITY, "patient_query", "11 characters"),
    ("pathway", "GetPathway", pathway_pb2.GetPathwayRequest(
        patient=common_pb2.PatientIdentifier(system=FNR_SYSTEM, value="1" * 33),
        purpose=COORDINATION,
    ), GP, "patient.value", "32 characters"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("service", "method", "request_", "actor", "field", "bound"),
    CASES,
    ids=[f"{c[0]}.{c[1]}:{c[4]}" for c in CASES],
)
def test_a_field_beyond_its_bound_is_refused_naming_the_field_and_nothing_changes(
    world: Harness,
    stubs: Stubs,
    service: str,
    method: str,
    request_: Message,
    actor: Actor,
    field: str,
    bound: str,
) -> None:
    before = stored(world)
    error = refused(getattr(getattr(stubs, service), method), request_, actor)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}: must ")
    assert f"at most {bound}" in error.details()
    assert stored(world) == before


def test_a_receipt_with_a_million_character_description_is_refused_and_one_within_is_kept(
    world: Harness, stubs: Stubs
) -> None:
    sent = stubs.referrals.SendReferral(
        referrals_pb2.SendReferralRequest(
            metadata=meta("apprec-story", hours=-3),
            patient=FIRST,
            receiver_her_id=HOSPITAL.her_id,
            reason="Kontroll etter funn på røntgen.",
            priority=referrals_pb2.REFERRAL_PRIORITY_ROUTINE,
        ),
        metadata=auth(GP),
    )
    wait_for_referrals(world, sent.referral_id)
    before = stored(world)
    receipt = referrals_pb2.RecordReferralReceiptRequest(
        metadata=meta("apprec-huge", hours=-2),
        referral_id=sent.referral_id,
        receipt=rejected(error("E10", "Mangler opplysninger. " * 50_000)),
    )
    error_ = refused(stubs.referrals.RecordReferralReceipt, receipt, HOSPITAL)
    assert error_.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_.details().startswith("receipt.errors[0].description: must be at most 1000")
    assert stored(world) == before
    got = stubs.referrals.GetReferral(
        referrals_pb2.GetReferralRequest(referral_id=sent.referral_id), metadata=auth(GP)
    )
    assert not got.HasField("last_receipt")

    receipt.metadata.command_id = "apprec-short"
    del receipt.receipt.errors[:]
    receipt.receipt.errors.append(error("E10", "Mangler opplysninger om medisiner."))
    stubs.referrals.RecordReferralReceipt(receipt, metadata=auth(HOSPITAL))
    got = stubs.referrals.GetReferral(
        referrals_pb2.GetReferralRequest(referral_id=sent.referral_id), metadata=auth(GP)
    )
    assert [e.description for e in got.last_receipt.errors] == [
        "Mangler opplysninger om medisiner."
    ]


def at(seconds: int, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


BEYOND_9999 = at(253_402_300_800)
BEFORE_1900 = at(-2_208_988_801)
NEGATIVE_NANOS = at(1_700_000_000, -5)

TIME_CASES: list[tuple[str, str, Message, Actor, str]] = [
    ("referrals", "SendReferral", referrals_pb2.SendReferralRequest(
        metadata=common_pb2.CommandMetadata(command_id="t1", occurred_at=BEYOND_9999),
        patient=FIRST, receiver_her_id=HOSPITAL.her_id, reason="r",
        priority=referrals_pb2.REFERRAL_PRIORITY_ROUTINE,
    ), GP, "metadata.occurred_at"),
    ("admissions", "AdmitPatient", admissions_pb2.AdmitPatientRequest(
        metadata=common_pb2.CommandMetadata(command_id="t2", occurred_at=BEFORE_1900),
        patient=FIRST, municipality_her_id=MUNICIPALITY.her_id, ward="Med. avd.",
    ), HOSPITAL, "metadata.occurred_at"),
    ("discharges", "DeclareReadyForDischarge", discharges_pb2.DeclareReadyForDischargeRequest(
        metadata=common_pb2.CommandMetadata(command_id="t3", occurred_at=NEGATIVE_NANOS),
    ), HOSPITAL, "metadata.occurred_at"),
    ("medications", "GetMedicationList", medications_pb2.GetMedicationListRequest(
        patient=FIRST, as_of=at(10**15),
    ), GP, "as_of"),
    ("pathway", "GetPathway", pathway_pb2.GetPathwayRequest(
        patient=FIRST, purpose=COORDINATION, as_of=NEGATIVE_NANOS,
    ), GP, "as_of"),
    ("pathway", "GetPathway", pathway_pb2.GetPathwayRequest(
        patient=FIRST, purpose=COORDINATION, medications_at=BEYOND_9999,
    ), GP, "medications_at"),
    ("access", "ListEmergencyAccesses", registry_pb2.ListEmergencyAccessesRequest(
        since=BEFORE_1900,
    ), HOSPITAL, "since"),
    ("registry", "RecordResidence", registry_pb2.RecordResidenceRequest(
        metadata=common_pb2.CommandMetadata(command_id="t4", occurred_at=at(-(10**13))),
        patient=FIRST, municipality_her_id=MUNICIPALITY.her_id,
    ), REGISTER_ADAPTER, "metadata.occurred_at"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("service", "method", "request_", "actor", "field"),
    TIME_CASES,
    ids=[f"{c[0]}.{c[1]}:{c[4]}" for c in TIME_CASES],
)
def test_an_impossible_time_is_refused_naming_the_field(
    world: Harness,
    stubs: Stubs,
    service: str,
    method: str,
    request_: Message,
    actor: Actor,
    field: str,
) -> None:
    before = stored(world)
    error_ = refused(getattr(getattr(stubs, service), method), request_, actor)
    assert error_.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_.details().startswith(f"{field}: is not a valid time")
    assert stored(world) == before


def worklist(**fields: Any) -> pathway_pb2.ListPathwaysRequest:
    return pathway_pb2.ListPathwaysRequest(
        municipality_her_id=MUNICIPALITY.her_id, purpose=COORDINATION, **fields
    )


def test_the_worklist_pages_with_opaque_tokens(stubs: Stubs) -> None:
    first = stubs.pathway.ListPathways(worklist(page_size=1), metadata=auth(MUNICIPALITY))
    assert first.next_page_token and not first.next_page_token.isdigit()
    second = stubs.pathway.ListPathways(
        worklist(page_size=1, page_token=first.next_page_token), metadata=auth(MUNICIPALITY)
    )
    listed = {i.patient.value for i in (*first.items, *second.items)}
    assert listed == {FIRST.value, SECOND.value}


@pytest.mark.parametrize(
    "token",
    ["1", "-1", "AAAA", "ikke et token", "%%%", "x" * 128],
)
def test_a_page_token_not_made_by_the_service_is_refused(stubs: Stubs, token: str) -> None:
    error_ = refused(
        stubs.pathway.ListPathways, worklist(page_size=1, page_token=token), MUNICIPALITY
    )
    assert error_.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_.details().startswith("page_token: ")


def test_a_page_token_from_another_query_is_refused(stubs: Stubs) -> None:
    first = stubs.pathway.ListPathways(worklist(page_size=1), metadata=auth(MUNICIPALITY))
    other_query = worklist(page_size=1, page_token=first.next_page_token, patient_query="2")
    error_ = refused(stubs.pathway.ListPathways, other_query, MUNICIPALITY)
    assert error_.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_.details() == "page_token: is not a token from a previous page of this query"
    citizen = Actor(her_id="", org_kind=OrgKind.CITIZEN, pid=FIRST.value)
    own_accesses = registry_pb2.ListAccessesRequest(patient=FIRST, page_token=first.next_page_token)
    error_ = refused(stubs.access.ListAccesses, own_accesses, citizen)
    assert error_.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_.details().startswith("page_token: ")


ANSWERS_TO_INPUT = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.ALREADY_EXISTS,
}


def around(bound: int) -> st.SearchStrategy[str]:
    """Texts of about `bound` characters, within it and beyond (any characters)."""
    return st.builds(
        lambda head, n, fill: (head + fill * n)[: n + len(head)],
        st.text(max_size=20),
        st.integers(bound - 25, bound + 5),
        st.characters(),
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    reason=st.one_of(st.text(max_size=50), around(10_000)),
    description=st.one_of(st.text(max_size=30), around(1_000)),
    code=st.text(max_size=20),
    command_id=st.text(min_size=0, max_size=140),
)
def test_random_free_text_never_gives_an_internal_error(
    stubs: Stubs, reason: str, description: str, code: str, command_id: str
) -> None:
    answers = []
    for call, request, actor in (
        (
            stubs.referrals.SendReferral,
            referrals_pb2.SendReferralRequest(
                metadata=common_pb2.CommandMetadata(
                    command_id=command_id, occurred_at=meta("x", hours=-3).occurred_at
                ),
                patient=FIRST,
                receiver_her_id=HOSPITAL.her_id,
                reason=reason,
                priority=referrals_pb2.REFERRAL_PRIORITY_ROUTINE,
            ),
            GP,
        ),
        (
            stubs.referrals.RecordReferralReceipt,
            referrals_pb2.RecordReferralReceiptRequest(
                metadata=meta(command_id or "r", hours=-1),
                referral_id="00000000-0000-0000-0000-000000000000",
                receipt=rejected(error(code, description)),
            ),
            HOSPITAL,
        ),
    ):
        try:
            call(request, metadata=auth(actor))
            answers.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            answers.append(exc.code())
    assert set(answers) <= ANSWERS_TO_INPUT


def test_an_unrelated_municipality_with_anothers_page_token_gets_nothing(stubs: Stubs) -> None:
    """A page token is no key: replayed by a municipality with no care relationship, the same
    worklist query is refused by the access policy like any other call of theirs."""
    first = stubs.pathway.ListPathways(worklist(page_size=1), metadata=auth(MUNICIPALITY))
    replayed = worklist(page_size=1, page_token=first.next_page_token)
    error_ = refused(stubs.pathway.ListPathways, replayed, OTHER_MUNICIPALITY)
    assert error_.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_bound_tells_an_unrelated_caller_nothing_about_who_exists(stubs: Stubs) -> None:
    """Bounds are checked before the policy, on the request alone: an over-long dose from an
    unrelated GP gets the same answer for a patient carepath knows as for one it does not."""
    unknown = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(3, 3, 33, 300))
    details = []
    for n, patient in enumerate((FIRST, unknown)):
        request = medications_pb2.PrescribeMedicationRequest(
            metadata=meta(f"unrelated-dose-{n}", hours=-1),
            patient=patient,
            medication=medications_pb2.Medication(atc_code="N02BE01", name="Paracetamol"),
            dose="x" * 10_000,
        )
        error_ = refused(stubs.medications.PrescribeMedication, request, OTHER_GP)
        assert error_.code() == grpc.StatusCode.INVALID_ARGUMENT
        details.append((error_.details(), rpc_status.from_call(error_)))
    assert details[0] == details[1]  # the message and the BadRequest/ErrorInfo details
