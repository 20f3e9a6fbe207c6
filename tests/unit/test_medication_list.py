"""The shared medication list as doctors in GP offices, hospitals and municipalities keep it
together (in-memory store)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import AggregateNotFoundError

from services.medications import domain
from services.medications.application import MedicationsApplication
from services.medications.domain import (
    TOKEN_WIDTH,
    Change,
    Entry,
    EntryState,
    MedicationList,
    MedicationListView,
    ReconciliationSource,
    add_token,
    change_of,
    fold,
    has_token,
    medication_list_id,
)
from shared.actors import Actor
from shared.errors import InvalidArgument, InvalidTransition, NotFound
from shared.ids import FNR_SYSTEM
from tests.conftest import GP, HOSPITAL, MUNICIPALITY
from tests.support import ctx, events_in, make_fnr

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(12, 3, 42, 480)}
METFORMIN = ("A10BA02", "Metformin")
WARFARIN = ("B01AA03", "Warfarin")


def at(day: int, hour: int = 9) -> datetime:
    return datetime(2026, 9, day, hour, tzinfo=UTC)


FIRST_OF_SEPTEMBER = at(1)


@pytest.fixture
def app() -> MedicationsApplication:
    return MedicationsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def prescribe(
    app: MedicationsApplication,
    command_id: str = "rx-1",
    when: datetime = FIRST_OF_SEPTEMBER,
    actor: Actor = GP,
    drug: tuple[str, str] = METFORMIN,
    dose: str = "500 mg x 2",
) -> tuple[MedicationListView, UUID]:
    """Prescribe and return the list and the new entry's id."""
    before = set(app.get_list(PATIENT).entries) if events_in(app) else set()
    view = app.prescribe(ctx(actor, command_id, when), PATIENT, *drug, dose, "Diabetes type 2")
    (new,) = set(view.entries) - before
    return view, UUID(new)


def entry(view: MedicationListView, entry_id: UUID) -> Entry:
    return view.entries[str(entry_id)]


# --- lifecycle -----------------------------------------------------------------------------


def test_the_first_prescription_starts_the_patients_list_with_an_active_entry(
    app: MedicationsApplication,
) -> None:
    view, metformin = prescribe(app)
    e = entry(view, metformin)
    assert (e.atc_code, e.name, e.dose, e.state) == ("A10BA02", "Metformin", "500 mg x 2", "ACTIVE")
    assert (e.source_her_id, e.source_kind) == (GP.her_id, "GP")
    assert e.prescribed_at == e.last_changed_at == at(1)
    assert view.list_id == medication_list_id(PATIENT)
    assert view.version == 2  # the list started, and the prescription


def test_a_medication_is_changed_paused_resumed_and_discontinued(
    app: MedicationsApplication,
) -> None:
    _, warfarin = prescribe(app, drug=WARFARIN, dose="5 mg x 1")
    view = app.change_dose(ctx(GP, "dose", at(3)), PATIENT, warfarin, "2.5 mg x 1", "INR 3.8")
    assert entry(view, warfarin).dose == "2.5 mg x 1"
    view = app.pause(ctx(HOSPITAL, "pause", at(5)), PATIENT, warfarin, "Pause før operasjon")
    e = entry(view, warfarin)
    assert (e.state, e.state_reason, e.last_changed_by["her_id"]) == (
        EntryState.PAUSED,
        "Pause før operasjon",
        HOSPITAL.her_id,
    )
    view = app.resume(ctx(HOSPITAL, "resume", at(7)), PATIENT, warfarin)
    assert (entry(view, warfarin).state, entry(view, warfarin).state_reason) == ("ACTIVE", None)
    view = app.discontinue(ctx(GP, "stop", at(20)), PATIENT, warfarin, "Byttet til apixaban")
    e = entry(view, warfarin)
    assert (e.state, e.state_reason, e.last_changed_at) == (
        "DISCONTINUED",
        "Byttet til apixaban",
        at(20),
    )
    assert (e.source_her_id, e.prescribed_at) == (GP.her_id, at(1))


def test_a_municipal_doctor_may_prescribe_on_the_same_list(app: MedicationsApplication) -> None:
    prescribe(app)
    view, paracetamol = prescribe(
        app, "kommune-rx", at(2), MUNICIPALITY, ("N02BE01", "Paracetamol"), "1 g x 3"
    )
    assert len(view.entries) == 2
    assert entry(view, paracetamol).source_kind == "MUNICIPALITY"


def test_the_history_uses_the_public_event_names(app: MedicationsApplication) -> None:
    _, metformin = prescribe(app)
    app.change_dose(ctx(GP, "d", at(2)), PATIENT, metformin, "1000 mg x 2", None)
    app.pause(ctx(GP, "p", at(3)), PATIENT, metformin, "Kontrastundersøkelse")
    app.resume(ctx(GP, "r", at(4)), PATIENT, metformin)
    app.discontinue(ctx(GP, "s", at(5)), PATIENT, metformin, "Bivirkninger")
    app.reconcile(ctx(GP, "rec", at(6)), PATIENT, [ReconciliationSource.PATIENT], None)
    stored = app.repository.event_store.get(medication_list_id(PATIENT))
    assert [type(e).__name__ for e in stored] == [
        "MedicationListStarted",
        "MedicationPrescribed",
        "MedicationDoseChanged",
        "MedicationPaused",
        "MedicationResumed",
        "MedicationDiscontinued",
        "MedicationListReconciled",
    ]


# --- impossible changes ----------------------------------------------------------------------


def test_a_paused_medication_cannot_be_paused_again(app: MedicationsApplication) -> None:
    _, metformin = prescribe(app)
    app.pause(ctx(GP, "p1", at(2)), PATIENT, metformin, "Kontrast")
    before = events_in(app)
    with pytest.raises(InvalidTransition, match="cannot pause: the medication is PAUSED"):
        app.pause(ctx(GP, "p2", at(3)), PATIENT, metformin, "Kontrast")
    assert events_in(app) == before


def test_an_active_medication_cannot_be_resumed(app: MedicationsApplication) -> None:
    _, metformin = prescribe(app)
    with pytest.raises(InvalidTransition, match="cannot resume: the medication is ACTIVE"):
        app.resume(ctx(GP, "r", at(2)), PATIENT, metformin)


@pytest.mark.parametrize("change", ["dose", "pause", "resume", "discontinue"])
def test_nothing_can_be_done_to_a_discontinued_medication(
    app: MedicationsApplication, change: str
) -> None:
    _, metformin = prescribe(app)
    app.discontinue(ctx(GP, "stop", at(2)), PATIENT, metformin, "Bivirkninger")
    before = events_in(app)
    later = ctx(HOSPITAL, "late", at(3))
    with pytest.raises(InvalidTransition, match="DISCONTINUED") as err:
        if change == "dose":
            app.change_dose(later, PATIENT, metformin, "1000 mg x 2", None)
        elif change == "pause":
            app.pause(later, PATIENT, metformin, "x")
        elif change == "resume":
            app.resume(later, PATIENT, metformin)
        else:
            app.discontinue(later, PATIENT, metformin, "x")
    assert err.value.current_state == "DISCONTINUED"
    assert events_in(app) == before


def test_an_unknown_entry_is_not_found(app: MedicationsApplication) -> None:
    prescribe(app)
    with pytest.raises(NotFound, match="entry"):
        app.pause(ctx(GP, "p", at(2)), PATIENT, uuid4(), "x")


def test_a_patient_without_a_list_has_nothing_to_change_or_read(
    app: MedicationsApplication,
) -> None:
    with pytest.raises(NotFound, match="medication list"):
        app.resume(ctx(GP, "r", at(2)), PATIENT, uuid4())
    with pytest.raises(NotFound, match="medication list"):
        app.get_list(PATIENT)
    assert events_in(app) == 0


@pytest.mark.parametrize("code", ["A10BA2", "X10BA02", "A10B A02", "metformin", "A10BA02X"])
def test_a_prescription_needs_an_atc_code_at_substance_level(
    app: MedicationsApplication, code: str
) -> None:
    with pytest.raises(InvalidArgument, match=r"^medication.atc_code:"):
        app.prescribe(ctx(GP, "rx", at(1)), PATIENT, code, "Metformin", "500 mg x 2", None)
    assert events_in(app) == 0


def test_an_atc_code_in_lower_case_is_stored_in_upper_case(app: MedicationsApplication) -> None:
    view = app.prescribe(ctx(GP, "rx", at(1)), PATIENT, "a10ba02", "Metformin", "500 mg", None)
    assert [e.atc_code for e in view.entries.values()] == ["A10BA02"]


def test_changing_to_the_dose_already_in_force_is_refused(app: MedicationsApplication) -> None:
    _, metformin = prescribe(app)
    with pytest.raises(InvalidArgument, match=r"^dose:"):
        app.change_dose(ctx(GP, "d", at(2)), PATIENT, metformin, "500 mg x 2", None)


def test_a_change_cannot_precede_the_prescription(app: MedicationsApplication) -> None:
    _, metformin = prescribe(app, when=at(10))
    with pytest.raises(InvalidArgument, match=r"^metadata.occurred_at:"):
        app.pause(ctx(GP, "p", at(9)), PATIENT, metformin, "x")


# --- idempotency -----------------------------------------------------------------------------


def test_a_repeated_first_prescription_returns_the_first_list_and_writes_nothing(
    app: MedicationsApplication,
) -> None:
    first, metformin = prescribe(app, "rx-same")
    before = events_in(app)
    again = app.prescribe(ctx(GP, "rx-same", at(1)), PATIENT, *WARFARIN, "5 mg", None)
    assert again == first and list(again.entries) == [str(metformin)]
    assert events_in(app) == before


def test_a_repeated_pause_returns_the_list_as_it_stood_after_the_pause(
    app: MedicationsApplication,
) -> None:
    _, metformin = prescribe(app)
    paused = app.pause(ctx(GP, "p", at(2)), PATIENT, metformin, "Kontrast")
    app.resume(ctx(GP, "r", at(3)), PATIENT, metformin)
    before = events_in(app)
    again = app.pause(ctx(GP, "p", at(2)), PATIENT, metformin, "Kontrast")
    assert again == paused and entry(again, metformin).state is EntryState.PAUSED
    assert events_in(app) == before


def test_the_same_command_id_from_two_organisations_names_two_prescriptions(
    app: MedicationsApplication,
) -> None:
    prescribe(app, "1")
    view, _ = prescribe(app, "1", at(2), HOSPITAL, WARFARIN, "5 mg x 1")
    assert len(view.entries) == 2


def test_two_first_prescriptions_racing_to_start_the_list_both_land(
    app: MedicationsApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    prescribe(app, "gp-rx")
    real_get = app.repository.get
    calls: list[int] = []

    def not_there_yet(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:  # the hospital loaded before the GP's save landed
            raise AggregateNotFoundError
        return real_get(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app.repository, "get", not_there_yet)
    view = app.prescribe(ctx(HOSPITAL, "hosp-rx", at(2)), PATIENT, *WARFARIN, "5 mg x 1", None)
    assert len(view.entries) == 2 and view.version == 3
    assert events_in(app) == 3


# --- clinical time -----------------------------------------------------------------------------


def test_the_list_on_discharge_day_shows_the_dose_before_a_later_change(
    app: MedicationsApplication,
) -> None:
    _, metformin = prescribe(app, when=at(1))
    discharge_day = at(10, 15)
    app.change_dose(ctx(GP, "gp-dose", at(14)), PATIENT, metformin, "1000 mg x 2", "HbA1c høy")
    then = app.get_list(PATIENT, as_of=discharge_day)
    now = app.get_list(PATIENT)
    assert entry(then, metformin).dose == "500 mg x 2"
    assert entry(now, metformin).dose == "1000 mg x 2"
    assert then.as_of == discharge_day and entry(then, metformin).last_changed_at == at(1)


def test_nothing_was_on_the_list_before_the_first_prescription(
    app: MedicationsApplication,
) -> None:
    prescribe(app, when=at(5))
    assert app.get_list(PATIENT, as_of=at(4)).entries == {}


def test_a_late_reported_pause_counts_from_when_it_happened(app: MedicationsApplication) -> None:
    _, warfarin = prescribe(app, drug=WARFARIN, dose="5 mg x 1", when=at(1))
    app.change_dose(ctx(GP, "gp-dose", at(8)), PATIENT, warfarin, "2.5 mg x 1", None)
    # recorded after the dose change, but the hospital paused it on the 5th
    app.pause(ctx(HOSPITAL, "late-pause", at(5)), PATIENT, warfarin, "Pause før operasjon")
    assert entry(app.get_list(PATIENT, as_of=at(4)), warfarin).state is EntryState.ACTIVE
    on_the_6th = entry(app.get_list(PATIENT, as_of=at(6)), warfarin)
    assert (on_the_6th.state, on_the_6th.dose) == (EntryState.PAUSED, "5 mg x 1")
    now = entry(app.get_list(PATIENT), warfarin)
    assert (now.state, now.dose, now.last_changed_at) == (EntryState.PAUSED, "2.5 mg x 1", at(8))


def test_a_late_report_that_would_make_a_later_change_impossible_is_refused(
    app: MedicationsApplication,
) -> None:
    _, warfarin = prescribe(app, drug=WARFARIN, dose="5 mg x 1", when=at(1))
    app.change_dose(ctx(GP, "gp-dose", at(8)), PATIENT, warfarin, "2.5 mg x 1", None)
    before = events_in(app)
    with pytest.raises(InvalidTransition, match="later recorded change"):
        app.discontinue(ctx(HOSPITAL, "late-stop", at(5)), PATIENT, warfarin, "Blødning")
    assert events_in(app) == before


def test_the_answer_to_a_command_is_the_list_now_in_clinical_order(
    app: MedicationsApplication,
) -> None:
    _, metformin = prescribe(app, when=at(1))
    app.change_dose(ctx(GP, "d2", at(8)), PATIENT, metformin, "1000 mg x 2", None)
    view = app.change_dose(ctx(GP, "d1-late", at(4)), PATIENT, metformin, "750 mg x 2", None)
    assert entry(view, metformin).dose == "1000 mg x 2"  # the change of the 8th is the latest
    assert view == app.get_list(PATIENT)


# --- reconciliation ----------------------------------------------------------------------------


def test_a_reconciliation_records_its_sources_by_whom_and_when(
    app: MedicationsApplication,
) -> None:
    prescribe(app)
    sources = [
        ReconciliationSource.PATIENT,
        ReconciliationSource.PRESCRIPTION_INTERMEDIARY,
        ReconciliationSource.PATIENT,
    ]
    view = app.reconcile(ctx(HOSPITAL, "rec", at(3)), PATIENT, sources, "Bruker ikke Albyl")
    rec = view.last_reconciliation
    assert rec is not None
    assert rec.sources == ("PATIENT", "PRESCRIPTION_INTERMEDIARY")
    assert (rec.reconciled_at, rec.reconciled_by["her_id"], rec.note) == (
        at(3),
        HOSPITAL.her_id,
        "Bruker ikke Albyl",
    )
    assert app.get_list(PATIENT, as_of=at(2)).last_reconciliation is None


def test_a_reconciliation_needs_a_source(app: MedicationsApplication) -> None:
    with pytest.raises(InvalidArgument, match=r"^sources:"):
        app.reconcile(ctx(GP, "rec", at(3)), PATIENT, [], None)
    assert events_in(app) == 0


def test_a_reconciliation_finding_no_medications_starts_an_empty_list(
    app: MedicationsApplication,
) -> None:
    view = app.reconcile(
        ctx(MUNICIPALITY, "rec", at(3)), PATIENT, [ReconciliationSource.NEXT_OF_KIN], None
    )
    assert view.entries == {} and view.last_reconciliation is not None


# --- the list now, kept change by change ---------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_the_list_kept_change_by_change_equals_the_fold_of_its_history(
    app: MedicationsApplication, seed: int
) -> None:
    """Commands at random clinical times, many of them reported late: whatever each command
    answers (or refuses), the list the aggregate keeps (and answers with) is the fold of the
    recorded changes, and so is every past list."""
    rng = random.Random(seed)
    entries = [
        prescribe(app, f"rx-{k}", at(1 + k), drug=d)[1] for k, d in enumerate((METFORMIN, WARFARIN))
    ]
    for i in range(120):
        when = at(3 + i // 6, rng.randrange(24))
        c = ctx((GP, HOSPITAL, MUNICIPALITY)[i % 3], f"c-{i}", when)
        target = rng.choice(entries)
        kind = rng.randrange(7)
        try:
            if kind == 0:
                view = app.change_dose(c, PATIENT, target, f"{i} mg", None)
            elif kind == 1:
                view = app.pause(c, PATIENT, target, f"pause {i}")
            elif kind == 2:
                view = app.resume(c, PATIENT, target)
            elif kind == 3 and rng.random() < 0.2:
                view = app.discontinue(c, PATIENT, target, f"stopp {i}")
            elif kind == 4:
                view = app.reconcile(c, PATIENT, [ReconciliationSource.PATIENT], f"runde {i}")
            elif kind == 5 and rng.random() < 0.3:
                view, new = prescribe(app, f"rx-late-{i}", when, drug=("N02BE01", f"P{i}"))
                entries.append(new)
            else:
                continue
        except (InvalidTransition, InvalidArgument):
            continue
        folded = fold(view.list_id, PATIENT, stored_changes(app))
        assert view == folded
        assert list(view.entries) == list(folded.entries)  # prescription order
    for day in range(1, 25):
        assert app.get_list(PATIENT, as_of=at(day)) == fold(
            medication_list_id(PATIENT), PATIENT, stored_changes(app), at(day)
        )


def stored_changes(app: MedicationsApplication) -> list[Change]:
    return [change_of(e) for e in app.repository.event_store.get(medication_list_id(PATIENT))]


def test_the_list_keeps_no_history_only_the_list_now(app: MedicationsApplication) -> None:
    _, metformin = prescribe(app)
    for i in range(30):
        app.change_dose(ctx(GP, f"d-{i}", at(2 + i % 20, i % 24)), PATIENT, metformin, f"{i}", None)
    aggregate = app.load(MedicationList, medication_list_id(PATIENT), "list")
    assert set(vars(aggregate)) == {
        "_id",
        "_version",
        "_pending_events",
        "_created_on",
        "_modified_on",
        "patient",
        "now",
        "handled",
    }
    assert len("".join(aggregate.handled)) == TOKEN_WIDTH * 31  # per command (the first: 2 events)


def test_a_token_is_found_only_at_a_tokens_place() -> None:
    pages: list[str] = []
    for token in ("abcdef", "ghijkl", "ghijkl", "mnopqr"):
        add_token(pages, token)
    assert pages == ["abcdefghijklmnopqr"]  # a command's second event adds nothing
    assert has_token(pages, "ghijkl") and not has_token(pages, "defghi")


def test_a_token_shared_with_another_command_costs_a_read_and_the_command_runs(
    app: MedicationsApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command's token the same: each new command seems handled, the store has no
    result for it, and it runs; a repeated one still answers with its first result."""
    monkeypatch.setattr(domain, "handled_token", lambda key: "AAAAAA")
    _, metformin = prescribe(app)
    paused = app.pause(ctx(GP, "p", at(2)), PATIENT, metformin, "Kontrast")
    resumed = app.resume(ctx(GP, "r", at(3)), PATIENT, metformin)
    assert entry(resumed, metformin).state is EntryState.ACTIVE and resumed.version == 4
    assert app.pause(ctx(GP, "p", at(2)), PATIENT, metformin, "Kontrast") == paused
    assert events_in(app) == 4
