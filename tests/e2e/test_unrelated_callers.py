"""Property: whatever an unrelated caller sends to any call of any service, it is never let in
(never OK) and never breaks anything (never INTERNAL). Requests are generated from each call's
message type (hypothesis), mixing junk with well-formed identifiers — patients carepath knows,
ids of real referrals and stays of those patients — so the policy, not only the validation, is
what answers. The system is the real one: every gRPC server, the broker, the projector.

"Unrelated" is every caller with no care relationship with any patient here, minus those a
call's own grounds let in without one (any hospital may admit; any professional may ask for
emergency access; anyone may read the directory; the register adapter keeps the registers; a
municipality may list its own worklist) — those are the matrix's business.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    correspondence_pb2,
    correspondence_pb2_grpc,
    discharges_pb2,
    medications_pb2,
    municipal_pb2,
    municipal_pb2_grpc,
    pathway_pb2,
    referrals_pb2,
    referrals_pb2_grpc,
    registry_pb2,
    streams_pb2,
)
from shared import grpc_client
from shared.access.model import Basis
from shared.access.policy import Rule, TargetKind
from shared.access.table import RULES
from shared.actors import Actor, OrgKind
from shared.broker import Tenant
from shared.ids import DNR_SYSTEM, FNR_SYSTEM, HNR_SYSTEM
from tests.conftest import (
    GP,
    HOSPITAL,
    MUNICIPALITY,
    OTHER_GP,
    OTHER_HOSPITAL,
    OTHER_MUNICIPALITY,
    STORES,
)
from tests.support import (
    Harness,
    auth,
    drain_queue,
    make_fnr,
    not_a_number,
    projector_queue,
    running_system,
    streams_server,
)

KNOWN = [make_fnr(9, 9, 39, 100 + 10 * i) for i in range(3)]
STRANGER = make_fnr(8, 8, 58, 100)
NOBODY_HPR = Actor(her_id="70707", org_kind=OrgKind.HOSPITAL)  # a system without a person
UNRELATED: list[Actor] = [
    OTHER_GP,
    OTHER_HOSPITAL,
    OTHER_MUNICIPALITY,
    NOBODY_HPR,
    Actor(her_id="112374", org_kind=OrgKind.REGISTRY),
    Actor.citizen(STRANGER),
]
ALLOWED = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT}


def _let_in_without_a_relationship(rule: Rule, actor: Actor) -> bool:
    """Callers a call's own grounds admit with no relationship (not 'unrelated' for it)."""
    if actor.org_kind not in rule.callers:
        return False
    grounds = set(rule.bases)
    if Basis.ADMITTING_HOSPITAL in grounds and actor.org_kind is OrgKind.HOSPITAL:
        return True
    if Basis.REGISTER_KEEPER in grounds and actor.org_kind is OrgKind.REGISTRY:
        return True
    if Basis.ORGANISATION_DIRECTORY in grounds:
        return True
    return rule.opens_emergency and bool(actor.hpr)


@pytest.fixture(scope="module")
def world(
    broker: Tenant, amqp_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The system with three patients the registers know (their municipality and fastlege are
    MUNICIPALITY and GP), a referral, a stay, a municipal service and the municipality's
    Forespørsel to the fastlege of each: real ids for the generator."""
    tmp = tmp_path_factory.mktemp("unrelated")
    urls = {name: f"sqlite:///{tmp}/{name}.sqlite" for name in (*STORES, "streams")}
    queue = projector_queue("unrelated")
    with (
        running_system(urls, broker, queue) as system,
        streams_server(broker, urls, system) as (streams, events_port),
    ):
        ids: list[str] = []
        referrals = referrals_pb2_grpc.ReferralServiceStub(system.channel(system.referrals_server))
        admissions = admissions_pb2_grpc.AdmissionServiceStub(
            system.channel(system.servers["admissions"])
        )
        municipal = municipal_pb2_grpc.MunicipalServiceStub(
            system.channel(system.servers["municipal"])
        )
        correspondence = correspondence_pb2_grpc.CorrespondenceServiceStub(
            system.channel(system.servers["correspondence"])
        )
        for value in KNOWN:
            patient = {"system": FNR_SYSTEM, "value": value}
            system.register(patient, municipality=MUNICIPALITY.her_id, gp=GP)
            pb = common_pb2.PatientIdentifier(**patient)
            meta = common_pb2.CommandMetadata(command_id=f"r-{value}")
            meta.occurred_at.GetCurrentTime()
            sent = referrals.SendReferral(
                referrals_pb2.SendReferralRequest(
                    metadata=meta,
                    patient=pb,
                    receiver_her_id=HOSPITAL.her_id,
                    reason="Tung pust",
                    priority=referrals_pb2.REFERRAL_PRIORITY_ROUTINE,
                ),
                metadata=auth(GP),
            )
            meta.command_id = f"a-{value}"
            stay = admissions.AdmitPatient(
                admissions_pb2.AdmitPatientRequest(
                    metadata=meta,
                    patient=pb,
                    ward="Med 1",
                    admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
                    municipality_her_id=MUNICIPALITY.her_id,
                ),
                metadata=auth(HOSPITAL),
            )
            meta.command_id = f"m-{value}"
            service = municipal.DecideService(
                municipal_pb2.DecideServiceRequest(
                    metadata=meta,
                    patient=pb,
                    kind=municipal_pb2.MUNICIPAL_SERVICE_KIND_HOME_NURSING,
                    starts_on=common_pb2.Date(year=2099, month=1, day=1),
                ),
                metadata=auth(MUNICIPALITY),
            )
            meta.command_id = f"c-{value}"
            asked = correspondence.SendMessage(
                correspondence_pb2.SendCorrespondenceMessageRequest(
                    metadata=meta,
                    patient=pb,
                    message_type=correspondence_pb2.CORRESPONDENCE_MESSAGE_TYPE_REQUEST,
                    text="Ber om medisinske opplysninger",
                ),
                metadata=auth(MUNICIPALITY),
            )
            ids += [sent.referral_id, stay.stay_id, service.service_id, asked.correspondence_id]
            ids += [m.message_id for m in asked.messages]
        ports = {"streams": streams.port, "events": events_port}
        yield {"system": system, "ids": ids, "ports": ports}
    drain_queue(amqp_uri, queue)


def _text(name: str, ids: list[str]) -> st.SearchStrategy[str]:
    """Junk, or a value of the shape the field wants (so validation lets it through)."""
    shaped: list[st.SearchStrategy[str]] = [st.text(max_size=40)]
    if name.endswith("_id") and "her" not in name:
        shaped += [st.sampled_from(ids), st.builds(lambda: str(uuid.uuid4()))]
    if "her_id" in name or "hpr" in name:
        shaped += [st.sampled_from([GP.her_id, MUNICIPALITY.her_id, "59", "4301", "0", "1" * 12])]
    if name == "value":
        shaped += [st.sampled_from([*KNOWN, not_a_number(1, 1, 90, 100)])]
    if name == "system":
        shaped += [st.sampled_from([FNR_SYSTEM, DNR_SYSTEM, HNR_SYSTEM])]
    return st.one_of(*shaped)


def _scalar(field: FieldDescriptor, ids: list[str]) -> st.SearchStrategy[Any]:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return _text(field.name, ids)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        numbers = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(numbers), st.integers(-5, 50))
    if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32):
        return st.integers(-(2**31), 2**31 - 1)
    if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64):
        return st.integers(-(2**63), 2**63 - 1)
    if t == FieldDescriptor.TYPE_UINT32:
        return st.integers(0, 2**32 - 1)
    if t == FieldDescriptor.TYPE_UINT64:
        return st.integers(0, 2**64 - 1)
    if t == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=20)
    raise NotImplementedError(field.full_name)


def messages(descriptor: Descriptor, ids: list[str], depth: int = 0) -> st.SearchStrategy[Any]:
    """Any message of this type: each field set or not, to plausible or junk values."""
    if descriptor.full_name == "google.protobuf.Timestamp":
        return st.builds(
            lambda s, n: (s, n), st.integers(-62135596800, 253402300799), st.integers(0, 999999999)
        )
    if descriptor.full_name == "carepath.v1.Date":
        return st.one_of(
            st.dates(min_value=date(1900, 1, 1)).map(lambda d: (d.year, d.month, d.day)),
            st.tuples(st.integers(-1, 10000), st.integers(-1, 14), st.integers(-1, 40)),
        )
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.message_type is not None:
            if depth > 3:
                continue
            value = messages(field.message_type, ids, depth + 1)
        else:
            value = _scalar(field, ids)
        if field.is_repeated:
            value = st.lists(value, max_size=3)
        fields[field.name] = st.none() | value
    return st.fixed_dictionaries(fields)


def fill(message: Message, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if value is None:
            continue
        field = message.DESCRIPTOR.fields_by_name[name]
        target = getattr(message, name)
        if field.message_type is not None:
            items = value if field.is_repeated else [value]
            for item in items:
                sub = target.add() if field.is_repeated else target
                full = field.message_type.full_name
                if full == "google.protobuf.Timestamp":
                    sub.seconds, sub.nanos = item
                elif full == "carepath.v1.Date":
                    sub.year, sub.month, sub.day = item
                else:
                    fill(sub, item)
                    sub.SetInParent()
        elif field.is_repeated:
            target.extend(value)
        else:
            setattr(message, name, value)


#: Each service's generated module and the harness server serving it.
SERVICES = {
    "ReferralService": (referrals_pb2, "referrals"),
    "AdmissionService": (admissions_pb2, "admissions"),
    "DischargeService": (discharges_pb2, "discharges"),
    "CorrespondenceService": (correspondence_pb2, "correspondence"),
    "MedicationService": (medications_pb2, "medications"),
    "MunicipalService": (municipal_pb2, "municipal"),
    "PathwayService": (pathway_pb2, "pathway"),
    "RegistryService": (registry_pb2, "registry"),
    "AccessService": (registry_pb2, "registry"),
    "SubscriptionAdminService": (streams_pb2, "streams"),
    "EventStreamService": (streams_pb2, "events"),
}


def unrelated_callers(rule: Rule) -> list[Actor]:
    return [a for a in UNRELATED if not _let_in_without_a_relationship(rule, a)]


def _own_list(rule: Rule, request: Message, caller: Actor) -> bool:
    """A municipality asking for its own worklist or its own numbers (allowed: it is not
    unrelated to them)."""
    target = rule.target
    if target.kind is TargetKind.ORGANISATION:
        own = str(getattr(request, target.field)).strip() == caller.her_id
        return own and caller.org_kind is target.org_kind
    if target.kind is TargetKind.OWN_ORGANISATION:
        field = target.field
    elif target.kind is TargetKind.PATIENT_OR_OWN_ORGANISATION:
        if request.HasField(target.field):
            return False
        field = target.own_field
    else:
        return False
    return bool(str(getattr(request, field)).strip() == caller.her_id)


#: Calls open to every caller (the directory) have no unrelated caller to try.
CALLS = sorted(m for m, rule in RULES.items() if unrelated_callers(rule))


@pytest.mark.parametrize("method", CALLS, ids=[c.rsplit(".", 1)[-1] for c in CALLS])
def test_an_unrelated_caller_is_never_let_in_and_never_breaks_anything(
    world: dict[str, Any], method: str
) -> None:
    system: Harness = world["system"]
    rule = RULES[method]
    proto, service = SERVICES[rule.service]
    if service in world["ports"]:  # the streams service's servers (the stream's is grpc.aio)
        channel = grpc_client.channel(f"127.0.0.1:{world['ports'][service]}", system.client_tls)
    else:
        server = system.pathway_server if service == "pathway" else system.servers[service]
        channel = system.channel(server)
    descriptor = proto.DESCRIPTOR.services_by_name[rule.service].methods_by_name[rule.method]
    request_class = getattr(proto, descriptor.input_type.name)
    streaming = descriptor.server_streaming
    call = (channel.unary_stream if streaming else channel.unary_unary)(
        f"/carepath.v1.{rule.service}/{rule.method}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=lambda b: b,
    )

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        values=messages(descriptor.input_type, world["ids"]),
        caller=st.sampled_from(unrelated_callers(rule)),
    )
    def property_holds(values: dict[str, Any], caller: Actor) -> None:
        request = request_class()
        fill(request, values)
        if _own_list(rule, request, caller):
            return
        try:
            reply = call(request, metadata=auth(caller), timeout=10)
            if streaming:
                next(iter(reply))
        except grpc.RpcError as exc:
            assert exc.code() in ALLOWED, (exc.code(), exc.details(), caller, request)
        else:
            raise AssertionError(f"let in: {caller} {request}")

    property_holds()
    channel.close()
