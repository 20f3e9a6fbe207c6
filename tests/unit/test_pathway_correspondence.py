"""The municipality's and the GP's correspondence in the pathway: messages with receipts, the
answer-due task that is breached and closes, the Norwegian timeline, and the same result from a
replay and from batches (envelopes as the correspondence service publishes them)."""

from __future__ import annotations

from datetime import UTC, datetime

from services.pathway.folding import codec
from services.pathway.folding.pathway import PatientState, fold, pathway_of, replay
from services.pathway.rows import derive_rows
from shared import rules
from shared.events import Envelope, Payload
from shared.events import correspondence as co
from shared.ids import FNR_SYSTEM
from shared.times import utc_iso
from tests.support import make_fnr

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(21, 6, 39, 350)}
GP = {"her_id": "8134021", "org_kind": "GP", "hpr": "9144900"}
MUNICIPALITY = {"her_id": "4201", "org_kind": "MUNICIPALITY", "hpr": "1203921"}
CORRESPONDENCE = "0b6a4c55-1f0e-5f51-9f3c-7d2d2f0c0001"
REQUEST = "0b6a4c55-1f0e-5f51-9f3c-7d2d2f0c0002"
ANSWER = "0b6a4c55-1f0e-5f51-9f3c-7d2d2f0c0003"
#: Monday 5 October 2026: five working days on is Monday 12 October.
ASKED = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)


def event(version: int, data: Payload, when: datetime, actor: dict[str, str]) -> Envelope:
    return Envelope(
        event_id=f"{CORRESPONDENCE}:{version}",
        aggregate_id=CORRESPONDENCE,
        aggregate_version=version,
        patient=PATIENT,
        occurred_at=when.isoformat(),
        recorded_at=when.isoformat(),
        actor=actor,
        correlation_id="c",
        causation_id=f"cmd-{version}",
        data=data,
    )


SENT = event(
    1,
    co.CorrespondenceMessageSent(
        message_id=REQUEST, message_type="REQUEST", from_her_id="4201", from_kind="MUNICIPALITY",
        to_her_id="8134021", to_kind="GP", text="Ber om medisinske opplysninger",
    ),
    ASKED,
    MUNICIPALITY,
)  # fmt: skip
RECEIPTED = event(
    2,
    co.MessageReceiptRecorded(message_id=REQUEST, status="OK", errors=[]),
    datetime(2026, 10, 5, 9, 5, tzinfo=UTC),
    GP,
)
ANSWERED = event(
    3,
    co.CorrespondenceRequestAnswered(
        request_message_id=REQUEST, message_id=ANSWER, message_type="MEDICAL_INFORMATION",
        to_her_id="4201", to_kind="MUNICIPALITY", text="Diagnoser og legemidler",
    ),
    datetime(2026, 10, 14, 8, 0, tzinfo=UTC),
    GP,
)  # fmt: skip


def test_a_request_waits_on_the_fastlege_until_five_working_days_after_it_was_sent() -> None:
    pathway = fold([SENT, RECEIPTED])
    (task,) = pathway.tasks
    assert (task.kind, task.waiting_on_her_id, task.waiting_on_kind) == (
        "CORRESPONDENCE_ANSWER", "8134021", "GP",
    )  # fmt: skip
    assert task.due == utc_iso(rules.correspondence_answer_due(ASKED))
    assert task.due.startswith("2026-10-12T21:59:59")  # the end of Monday 12 October, Oslo
    assert task.description == "Fastlegen må svare på forespørselen"


def test_the_answer_closes_the_task_and_waits_for_its_own_receipt() -> None:
    pathway = fold([SENT, RECEIPTED, ANSWERED])
    assert [t.kind for t in pathway.tasks] == ["MESSAGE_RECEIPT"]
    assert pathway.tasks[0].waiting_on_her_id == "4201"
    names = [(m.name, m.to_kind, m.status) for m in pathway.messages]
    assert names == [
        ("Forespørsel", "GP", "OK"),
        ("Medisinske opplysninger", "MUNICIPALITY", None),
    ]


def test_the_timeline_says_it_in_norwegian_without_the_messages_text() -> None:
    _, timeline = replay([ANSWERED, SENT, RECEIPTED])
    assert [summary for _, summary in timeline] == [
        "Kommunen sendte forespørsel til fastlegen",
        "Applikasjonskvittering OK registrert",
        "Fastlegen svarte på forespørselen: medisinske opplysninger",
    ]


def test_batches_give_what_a_replay_gives_and_the_state_survives_its_text() -> None:
    state = PatientState()
    state.add([SENT])
    state = codec.load(codec.dump(state))
    state.add([RECEIPTED, ANSWERED])
    replayed, _ = replay([SENT, RECEIPTED, ANSWERED])
    assert codec.dump(state) == codec.dump(replayed)
    assert pathway_of(state).tasks == pathway_of(replayed).tasks


def test_a_state_stored_before_the_correspondence_existed_still_loads() -> None:
    state, _ = replay([SENT])
    plain = codec.dump(state).replace(',"correspondence":', ',"_gone":')
    assert codec.load(plain).correspondence == {}


def test_the_rows_hold_the_messages_the_task_and_when_the_request_was_answered() -> None:
    rows = derive_rows("key", [SENT, RECEIPTED])
    assert [m["name"] for m in rows["pathway_messages"]] == ["Forespørsel"]
    assert [t["kind"] for t in rows["pathway_tasks"]] == ["CORRESPONDENCE_ANSWER"]
    (waiting,) = rows["pathway_correspondence"]
    assert (waiting["answer_due"], waiting["answered_at"]) == (
        utc_iso(rules.correspondence_answer_due(ASKED)), None,
    )  # fmt: skip
    (answered,) = derive_rows("key", [SENT, RECEIPTED, ANSWERED])["pathway_correspondence"]
    assert answered["answered_at"] == utc_iso(ANSWERED.occurred_at)
    assert answered["answered_at"] > answered["answer_due"]  # two days late
