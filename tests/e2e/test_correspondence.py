"""The municipality and the patient's fastlege write to each other, on the real services: the
correspondence service's gRPC server, its outbox relay, RabbitMQ and the pathway projector.
The registers (as the register adapter records them) say the patient lives in MUNICIPALITY and
is on GP's list; nobody names a receiver — the service takes it from the registers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from carepath.v1 import (
    common_pb2,
    correspondence_pb2,
    correspondence_pb2_grpc,
    pathway_pb2,
    pathway_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from services.viewer.picture import LANE_HEIGHT, LANES, TOP, picture
from services.viewer.present import GP as GP_LANE
from services.viewer.present import MUNICIPALITY as MUNICIPALITY_LANE
from shared.actors import Actor, OrgKind
from shared.broker import Tenant
from shared.ids import FNR_SYSTEM
from tests.conftest import GP, MUNICIPALITY, OTHER_GP, OTHER_MUNICIPALITY
from tests.support import (
    REGISTER_ADAPTER,
    Harness,
    auth,
    drain_queue,
    make_fnr,
    meta,
    projector_queue,
    running_system,
)
from tests.support import wait_for as wait

REQUEST = correspondence_pb2.CORRESPONDENCE_MESSAGE_TYPE_REQUEST
MEDICAL_INFORMATION = correspondence_pb2.CORRESPONDENCE_MESSAGE_TYPE_MEDICAL_INFORMATION
REQUEST_ANSWER = correspondence_pb2.CORRESPONDENCE_MESSAGE_TYPE_REQUEST_ANSWER
OK_RECEIPT = common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK)
ANSWER_DUE = pathway_pb2.TASK_KIND_CORRESPONDENCE_ANSWER


@pytest.fixture
def system(backend: dict[str, str], broker: Tenant, amqp_uri: str) -> Iterator[Harness]:
    queue = projector_queue("e2e-correspondence")
    with running_system(backend, broker, queue) as harness:
        yield harness
    drain_queue(amqp_uri, queue)


def registered(system: Harness, day: int) -> common_pb2.PatientIdentifier:
    patient = {"system": FNR_SYSTEM, "value": make_fnr(day, 5, 37, 310)}
    system.register(patient, municipality=MUNICIPALITY.her_id, gp=GP)
    return common_pb2.PatientIdentifier(**patient)


def clients(
    system: Harness,
) -> tuple[correspondence_pb2_grpc.CorrespondenceServiceStub, pathway_pb2_grpc.PathwayServiceStub]:
    return (
        correspondence_pb2_grpc.CorrespondenceServiceStub(
            system.channel(system.servers["correspondence"])
        ),
        pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server)),
    )


def pathway_when(
    stub: pathway_pb2_grpc.PathwayServiceStub,
    patient: common_pb2.PatientIdentifier,
    ready: Callable[[pathway_pb2.Pathway], bool],
    what: str,
) -> pathway_pb2.Pathway:
    """The municipality's GetPathway once the projector has folded what `ready` looks for."""

    def read() -> pathway_pb2.Pathway | None:
        try:
            reply = stub.GetPathway(
                pathway_pb2.GetPathwayRequest(
                    patient=patient, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
                ),
                metadata=auth(MUNICIPALITY),
            )
        except grpc.RpcError as exc:  # no pathway until the projector has the first event
            if exc.code() is not grpc.StatusCode.NOT_FOUND:
                raise
            return None
        return reply if ready(reply) else None

    return wait(read, what=what)


def test_a_forespørsel_answered_late_breaches_its_deadline_and_closes_when_the_svar_arrives(
    system: Harness,
) -> None:
    patient = registered(system, 11)
    correspondence, pathway = clients(system)
    asked_at = datetime.now(UTC) - timedelta(days=14)  # 5 working days have long passed
    asked = correspondence.SendMessage(
        correspondence_pb2.SendCorrespondenceMessageRequest(
            metadata=meta("ask", asked_at),
            patient=patient,
            message_type=REQUEST,
            text="Har pasienten fått endret dosering av vanndrivende?",
        ),
        metadata=auth(MUNICIPALITY),
    )
    assert (asked.receiver.her_id, asked.awaiting_answer) == (GP.her_id, True)

    def breached(reply: pathway_pb2.Pathway) -> bool:
        return any(t.kind == ANSWER_DUE and t.breached for t in reply.tasks)

    late = pathway_when(pathway, patient, breached, "the answer-due task, breached")
    (task,) = [t for t in late.tasks if t.kind == ANSWER_DUE]
    assert task.waiting_on.her_id == GP.her_id
    assert task.waiting_on.kind == common_pb2.ORGANISATION_KIND_GP
    assert task.description == "Fastlegen må svare på forespørselen"

    # Another GP office cannot answer for the fastlege; the fastlege answers, once.
    with pytest.raises(grpc.RpcError) as refused:
        correspondence.AnswerRequest(
            correspondence_pb2.AnswerCorrespondenceRequestRequest(
                metadata=meta(), correspondence_id=asked.correspondence_id,
                message_type=REQUEST_ANSWER, text="Svar",
            ),
            metadata=auth(OTHER_GP),
        )  # fmt: skip
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    answer = correspondence_pb2.AnswerCorrespondenceRequestRequest(
        metadata=meta("answer"),
        correspondence_id=asked.correspondence_id,
        message_type=REQUEST_ANSWER,
        text="Ja, furosemid økt til 40 mg x 2 for ti dager siden",
    )
    answered = correspondence.AnswerRequest(answer, metadata=auth(GP))
    assert not answered.awaiting_answer
    assert correspondence.AnswerRequest(answer, metadata=auth(GP)) == answered  # a retry
    answer.metadata.command_id = "answer-again"
    with pytest.raises(grpc.RpcError) as twice:
        correspondence.AnswerRequest(answer, metadata=auth(GP))
    assert twice.value.code() is grpc.StatusCode.FAILED_PRECONDITION

    def closed(reply: pathway_pb2.Pathway) -> bool:
        return not any(t.kind == ANSWER_DUE for t in reply.tasks) and len(reply.messages) == 2

    done = pathway_when(pathway, patient, closed, "the answer in the pathway")
    assert [m.name for m in done.messages] == ["Forespørsel", "Svar på forespørsel"]
    (summary,) = done.correspondence
    assert (summary.name, summary.late, summary.HasField("answered_at")) == (
        "Forespørsel", True, True,
    )  # fmt: skip
    assert getattr(summary, "from").her_id == MUNICIPALITY.her_id
    assert [e.summary for e in done.timeline] == [
        "Kommunen sendte forespørsel til fastlegen",
        "Fastlegen svarte på forespørselen: svar på forespørsel",
    ]


def test_before_a_nursing_home_place_the_municipality_asks_the_gp_for_medisinske_opplysninger(
    system: Harness,
) -> None:
    patient = registered(system, 12)
    correspondence, pathway = clients(system)
    asked = correspondence.SendMessage(
        correspondence_pb2.SendCorrespondenceMessageRequest(
            metadata=meta("ask", hours=-3),
            patient=patient,
            message_type=REQUEST,
            text="Søknad om langtidsplass i sykehjem: ber om medisinske opplysninger",
        ),
        metadata=auth(MUNICIPALITY),
    )
    cid = asked.correspondence_id
    (request,) = asked.messages
    correspondence.RecordMessageReceipt(
        correspondence_pb2.RecordCorrespondenceMessageReceiptRequest(
            metadata=meta("receipt-gp", hours=-3), correspondence_id=cid,
            message_id=request.message_id, receipt=OK_RECEIPT,
        ),
        metadata=auth(GP),
    )  # fmt: skip
    answered = correspondence.AnswerRequest(
        correspondence_pb2.AnswerCorrespondenceRequestRequest(
            metadata=meta("medical", hours=-1),
            correspondence_id=cid,
            message_type=MEDICAL_INFORMATION,
            text="Demens, moderat grad; hjertesvikt; falltendens. Legemiddelliste vedlagt.",
        ),
        metadata=auth(GP),
    )
    medical = answered.messages[-1]
    assert (medical.type, medical.to_her_id) == (MEDICAL_INFORMATION, MUNICIPALITY.her_id)
    correspondence.RecordMessageReceipt(
        correspondence_pb2.RecordCorrespondenceMessageReceiptRequest(
            metadata=meta("receipt-municipality", hours=-1), correspondence_id=cid,
            message_id=medical.message_id, receipt=OK_RECEIPT,
        ),
        metadata=auth(MUNICIPALITY),
    )  # fmt: skip

    def everything(reply: pathway_pb2.Pathway) -> bool:
        return len(reply.timeline) == 4

    reply = pathway_when(pathway, patient, everything, "the correspondence in the pathway")
    assert not reply.tasks  # answered, and each message receipted
    (summary,) = reply.correspondence
    assert (summary.to.her_id, summary.late) == (GP.her_id, False)  # answered in time
    assert [(m.name, m.to.her_id, m.receipt) for m in reply.messages] == [
        ("Forespørsel", GP.her_id, common_pb2.APP_REC_STATUS_OK),
        ("Medisinske opplysninger", MUNICIPALITY.her_id, common_pb2.APP_REC_STATUS_OK),
    ]

    # The viewer's picture: the Forespørsel in the Kommune lane, the answer in the Fastlege lane.
    pic = picture(reply, datetime.now(UTC))
    lane_y = {kind: TOP + i * LANE_HEIGHT + LANE_HEIGHT / 2 for i, (kind, _) in enumerate(LANES)}
    messages = [m for m in pic.marks if m.kind == "message"]
    assert sorted((m.y, m.title.split(" til ")[0]) for m in messages) == sorted(
        [(lane_y[MUNICIPALITY_LANE], "Forespørsel"), (lane_y[GP_LANE], "Medisinske opplysninger")]
    )
    # The GP reads the same correspondence; a GP office that is not the fastlege cannot.
    assert (
        correspondence.GetCorrespondence(
            correspondence_pb2.GetCorrespondenceRequest(correspondence_id=cid), metadata=auth(GP)
        )
        .messages[-1]
        .text.startswith("Demens")
    )
    with pytest.raises(grpc.RpcError) as refused:
        correspondence.GetCorrespondence(
            correspondence_pb2.GetCorrespondenceRequest(correspondence_id=cid),
            metadata=auth(OTHER_GP),
        )
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED


#: The municipality's emergency clinic: the organisation directory lists it under MUNICIPALITY.
LEGEVAKT = Actor(her_id="4201990", org_kind=OrgKind.MUNICIPALITY, hpr="1203998")
#: Another municipality's legevakt, listed under OTHER_MUNICIPALITY.
OTHER_LEGEVAKT = Actor(her_id="4301990", org_kind=OrgKind.MUNICIPALITY, hpr="6611998")


def in_the_directory(system: Harness, unit: Actor, parent: Actor, name: str) -> None:
    """The register adapter records the unit in the directory, under its municipality."""
    registry = registry_pb2_grpc.RegistryServiceStub(system.channel(system.servers["registry"]))
    registry.RegisterOrganisation(
        registry_pb2.RegisterOrganisationRequest(
            metadata=meta(),
            her_id=unit.her_id,
            kind=common_pb2.ORGANISATION_KIND_MUNICIPALITY,
            name=name,
            parent_her_id=parent.her_id,
        ),
        metadata=auth(REGISTER_ADAPTER),
    )
    wait(
        lambda: system.access["correspondence"].facts.organisations([unit.her_id]),
        what=f"{name} in the directory",
    )


def test_the_fastlege_asks_the_legevakt_of_the_patients_municipality_and_the_legevakt_answers(
    system: Harness,
) -> None:
    patient = registered(system, 13)
    in_the_directory(system, LEGEVAKT, MUNICIPALITY, "Fjordvik legevakt")
    in_the_directory(system, OTHER_LEGEVAKT, OTHER_MUNICIPALITY, "Nabodal legevakt")
    correspondence, pathway = clients(system)

    def ask(legevakt: Actor) -> correspondence_pb2.Correspondence:
        return correspondence.SendMessage(
            correspondence_pb2.SendCorrespondenceMessageRequest(
                metadata=meta(hours=-5),
                patient=patient,
                message_type=REQUEST,
                text="Pasienten var hos dere i natt: hva ble gjort, og trengs kontroll hos meg?",
                to_her_id=legevakt.her_id,
            ),
            metadata=auth(GP),
        )

    with pytest.raises(grpc.RpcError) as elsewhere:  # not a service of her municipality
        ask(OTHER_LEGEVAKT)
    assert elsewhere.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    asked = ask(LEGEVAKT)
    assert asked.receiver.her_id == LEGEVAKT.her_id
    cid, (request,) = asked.correspondence_id, asked.messages
    correspondence.RecordMessageReceipt(
        correspondence_pb2.RecordCorrespondenceMessageReceiptRequest(
            metadata=meta(hours=-5), correspondence_id=cid, message_id=request.message_id,
            receipt=OK_RECEIPT,
        ),
        metadata=auth(LEGEVAKT),
    )  # fmt: skip
    correspondence.AnswerRequest(
        correspondence_pb2.AnswerCorrespondenceRequestRequest(
            metadata=meta(hours=-4), correspondence_id=cid, message_type=REQUEST_ANSWER,
            text="Pneumoni, startet amoksicillin. Kontroll hos fastlege om tre dager.",
        ),
        metadata=auth(LEGEVAKT),
    )  # fmt: skip

    def answered(reply: pathway_pb2.Pathway) -> bool:
        return len(reply.messages) == 2 and not any(t.kind == ANSWER_DUE for t in reply.tasks)

    reply = pathway_when(pathway, patient, answered, "the legevakt's answer in the pathway")
    assert [(m.name, m.to.her_id, m.to.kind) for m in reply.messages] == [
        ("Forespørsel", LEGEVAKT.her_id, common_pb2.ORGANISATION_KIND_MUNICIPALITY),
        ("Svar på forespørsel", GP.her_id, common_pb2.ORGANISATION_KIND_GP),
    ]
    names = {o.her_id: o.name for o in reply.organisations}
    assert names[LEGEVAKT.her_id] == "Fjordvik legevakt"
