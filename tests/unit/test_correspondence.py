"""The municipality and the patient's fastlege write to each other (in-memory store; what the
registers say handed in as the gRPC api reads it from the access facts)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.correspondence.application import CorrespondenceApplication
from services.correspondence.domain import MessageType, NoFastlege, Registered
from shared.actors import Actor, OrgKind
from shared.apprec import AppRecStatus
from shared.errors import InvalidArgument, InvalidTransition, NotFound, NotPermitted
from shared.ids import FNR_SYSTEM
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_GP, OTHER_MUNICIPALITY
from tests.support import ctx, make_fnr

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(14, 2, 41, 420)}
MONDAY = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
#: The patient lives in MUNICIPALITY, stays in OTHER_MUNICIPALITY, and is on GP's list.
REGISTERED = Registered(GP.her_id, (OTHER_MUNICIPALITY.her_id, MUNICIPALITY.her_id))


@pytest.fixture
def app() -> CorrespondenceApplication:
    return CorrespondenceApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def ask_gp(app: CorrespondenceApplication, command_id: str = "ask") -> uuid.UUID:
    c = app.send_message(
        ctx(MUNICIPALITY, command_id, MONDAY),
        PATIENT,
        MessageType.REQUEST,
        "Trenger oppdaterte medisinske opplysninger før vedtak om sykehjemsplass",
        REGISTERED,
    )
    return c.id


def test_the_municipalitys_request_goes_to_the_registered_fastlege_and_waits_for_its_answer(
    app: CorrespondenceApplication,
) -> None:
    c = app.get_correspondence(ask_gp(app))
    assert (c.receiver, c.receiver_kind.value) == (GP.her_id, "GP")
    assert c.awaits_answer
    (message,) = c.messages.values()
    assert message["to_her_id"] == GP.her_id and message["receipt"] is None


def test_the_gp_answers_with_medisinske_opplysninger_once(app: CorrespondenceApplication) -> None:
    cid = ask_gp(app)
    c = app.answer_request(
        ctx(GP, "answer", MONDAY, days=2), cid, MessageType.MEDICAL_INFORMATION, "Diagnoser: ..."
    )
    assert not c.awaits_answer
    answer = c.messages[str(c.answer_message_id)]
    assert (answer["type"], answer["to_her_id"]) == ("MEDICAL_INFORMATION", MUNICIPALITY.her_id)
    again = app.answer_request(
        ctx(GP, "answer", MONDAY, days=2), cid, MessageType.MEDICAL_INFORMATION, "Diagnoser: ..."
    )
    assert again.version == c.version  # the retried command returns its first result
    with pytest.raises(InvalidTransition):
        app.answer_request(ctx(GP, "second", MONDAY, days=3), cid, MessageType.REQUEST_ANSWER, "x")


def test_only_the_requests_receiver_answers_it(app: CorrespondenceApplication) -> None:
    cid = ask_gp(app)
    for who in (OTHER_GP, MUNICIPALITY):
        with pytest.raises(NotPermitted):
            app.answer_request(ctx(who, "a", MONDAY), cid, MessageType.REQUEST_ANSWER, "svar")


def test_a_municipality_cannot_answer_with_medisinske_opplysninger(
    app: CorrespondenceApplication,
) -> None:
    c = app.send_message(
        ctx(GP, "gp-asks", MONDAY), PATIENT, MessageType.REQUEST, "Får pasienten hjemmesykepleie?",
        REGISTERED,
    )  # fmt: skip
    assert c.receiver == OTHER_MUNICIPALITY.her_id  # the oppholdskommune before the residence
    with pytest.raises(InvalidArgument, match="message_type"):
        app.answer_request(
            ctx(OTHER_MUNICIPALITY, "a", MONDAY), c.id, MessageType.MEDICAL_INFORMATION, "x"
        )
    done = app.answer_request(
        ctx(OTHER_MUNICIPALITY, "a", MONDAY), c.id, MessageType.REQUEST_ANSWER, "Ja, daglig"
    )
    assert not done.awaits_answer


def test_a_dialogue_message_is_not_a_request_and_cannot_be_answered(
    app: CorrespondenceApplication,
) -> None:
    c = app.send_message(
        ctx(MUNICIPALITY, "d", MONDAY), PATIENT, MessageType.DIALOGUE, "Til orientering",
        REGISTERED,
    )  # fmt: skip
    assert not c.awaits_answer
    with pytest.raises(InvalidTransition):
        app.answer_request(ctx(GP, "a", MONDAY), c.id, MessageType.REQUEST_ANSWER, "svar")


@pytest.mark.parametrize(
    ("sender", "kind"),
    [
        (MUNICIPALITY, MessageType.MEDICAL_INFORMATION),
        (GP, MessageType.HEALTH_INFORMATION_TO_GP),
        (GP, MessageType.SERVICE_NOTICE),
        (HOSPITAL, MessageType.DIALOGUE),
    ],
)
def test_each_message_type_has_its_senders(
    app: CorrespondenceApplication, sender: object, kind: MessageType
) -> None:
    with pytest.raises(NotPermitted):
        app.send_message(ctx(sender, "x", MONDAY), PATIENT, kind, "tekst", REGISTERED)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        app.get_correspondence(uuid.uuid4())


def test_the_registers_not_the_request_name_the_parties(app: CorrespondenceApplication) -> None:
    """A GP that is not the patient's fastlege, a municipality the patient neither lives nor
    stays in, a municipality naming a receiver, a GP naming another municipality: refused."""
    elsewhere = Registered(GP.her_id, (MUNICIPALITY.her_id,))
    with pytest.raises(NotPermitted):
        app.send_message(ctx(OTHER_GP, "a", MONDAY), PATIENT, MessageType.DIALOGUE, "t", elsewhere)
    with pytest.raises(NotPermitted):
        app.send_message(
            ctx(OTHER_MUNICIPALITY, "b", MONDAY), PATIENT, MessageType.DIALOGUE, "t", elsewhere
        )
    with pytest.raises(InvalidArgument, match="to_her_id"):
        app.send_message(
            ctx(MUNICIPALITY, "c", MONDAY), PATIENT, MessageType.DIALOGUE, "t", elsewhere, GP.her_id
        )
    with pytest.raises(InvalidArgument, match="to_her_id"):
        app.send_message(
            ctx(GP, "d", MONDAY), PATIENT, MessageType.DIALOGUE, "t", elsewhere, "4999"
        )
    with pytest.raises(NoFastlege):
        app.send_message(
            ctx(MUNICIPALITY, "e", MONDAY), PATIENT, MessageType.REQUEST, "t",
            Registered(None, (MUNICIPALITY.her_id,)),
        )  # fmt: skip


def test_each_message_is_receipted_by_its_receiver_once(app: CorrespondenceApplication) -> None:
    cid = ask_gp(app)
    c = app.answer_request(ctx(GP, "svar", MONDAY), cid, MessageType.REQUEST_ANSWER, "Svar")
    request, answer = (uuid.UUID(m) for m in c.messages)
    with pytest.raises(NotPermitted):
        app.record_message_receipt(
            ctx(MUNICIPALITY, "r0", MONDAY), cid, request, AppRecStatus.OK, []
        )
    app.record_message_receipt(ctx(GP, "r1", MONDAY), cid, request, AppRecStatus.OK, [])
    c = app.record_message_receipt(
        ctx(MUNICIPALITY, "r2", MONDAY), cid, answer, AppRecStatus.OK, []
    )
    assert all(m["receipt"]["status"] == "OK" for m in c.messages.values())
    with pytest.raises(InvalidTransition):
        app.record_message_receipt(ctx(GP, "r3", MONDAY), cid, request, AppRecStatus.OK, [])


LEGEVAKT = "4201990"  # the directory lists it under MUNICIPALITY (a municipal service)


def test_the_fastlege_writes_to_the_legevakt_of_the_patients_municipality_which_answers(
    app: CorrespondenceApplication,
) -> None:
    with_unit = Registered(GP.her_id, (MUNICIPALITY.her_id,), ((LEGEVAKT, MUNICIPALITY.her_id),))
    c = app.send_message(
        ctx(GP, "to-lv", MONDAY), PATIENT, MessageType.REQUEST,
        "Var pasienten på legevakt i natt? Hva ble gitt?", with_unit, LEGEVAKT,
    )  # fmt: skip
    assert (c.receiver, c.receiver_kind.value) == (LEGEVAKT, "MUNICIPALITY")
    legevakt = Actor(her_id=LEGEVAKT, org_kind=OrgKind.MUNICIPALITY, hpr="1203999")
    done = app.answer_request(
        ctx(legevakt, "svar", MONDAY), c.id, MessageType.REQUEST_ANSWER, "Ja, fikk antibiotika"
    )
    assert not done.awaits_answer


def test_a_service_of_another_municipality_is_no_receiver(app: CorrespondenceApplication) -> None:
    elsewhere = Registered(
        GP.her_id, (MUNICIPALITY.her_id,), ((LEGEVAKT, OTHER_MUNICIPALITY.her_id),)
    )
    with pytest.raises(InvalidArgument, match="to_her_id"):
        app.send_message(
            ctx(GP, "x", MONDAY), PATIENT, MessageType.DIALOGUE, "t", elsewhere, LEGEVAKT
        )
