"""The projector's fold, batch by batch on a stored state, says exactly what one fold of the
whole history says — for a patient with a long, mixed history (registers, a referral, a stay,
a discharge, hundreds of dose changes) delivered in batches of any size, late reports included.
And the folding package reads no other service."""

from __future__ import annotations

import ast
import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from services.admissions.application import AdmissionsApplication
from services.admissions.domain import AdmissionType
from services.medications.application import MedicationsApplication
from services.medications.domain import ReconciliationSource
from services.pathway.folding import codec
from services.pathway.folding.medications import medication_list
from services.pathway.folding.pathway import NotInOrder, PatientState, replay
from services.pathway.readmodel import REWRITTEN
from services.pathway.rows import Rows, answer_rows, derive_rows, replayed, timeline_rows
from services.referrals.application import ReferralsApplication
from services.referrals.domain import Priority
from services.registry.application import RegistryApplication
from shared.apprec import AppRecStatus
from shared.domain import CommandContext
from shared.events import Envelope, Payload
from shared.events import discharges as dc
from shared.ids import FNR_SYSTEM
from shared.outbox import iter_all_envelopes
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_GP, OTHER_HOSPITAL
from tests.support import READINESS_NOTICE, REGISTER_ADAPTER, make_fnr

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(9, 9, 49, 480)}
KEY = f"{PATIENT['system']}|{PATIENT['value']}"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
APPENDED = (
    "pathway_timeline",
    "pathway_medication_entries",
    "pathway_medication_versions",
    "pathway_medication_reconciliations",
)


def ctx(actor, command_id, hours=0.0):  # type: ignore[no-untyped-def]
    return CommandContext(command_id, T0 + timedelta(hours=hours), actor, "corr")


def discharge_events(stay_id: str) -> list[Envelope]:
    """A discharge as the discharges service publishes it (its first event is internal)."""
    discharge = "6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d0a01"

    def event(version: int, data: Payload, hours: float, actor: dict[str, str]) -> Envelope:
        return Envelope(
            event_id=f"{discharge}:{version}",
            aggregate_id=discharge,
            aggregate_version=version,
            patient=PATIENT,
            occurred_at=(T0 + timedelta(hours=hours)).isoformat(),
            recorded_at=datetime.now(UTC).isoformat(),
            actor=actor,
            correlation_id="c",
            causation_id=f"d-{version}",
            data=data,
        )

    hospital = {"her_id": HOSPITAL.her_id, "org_kind": "HOSPITAL"}
    municipality = {"her_id": MUNICIPALITY.her_id, "org_kind": "MUNICIPALITY"}
    notice = "6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d0a02"
    return [
        event(
            2,
            dc.PatientDeclaredReadyForDischarge(
                stay_id=stay_id,
                hospital_her_id=HOSPITAL.her_id,
                municipality_her_id=MUNICIPALITY.her_id,
                message_id=notice,
                **READINESS_NOTICE,
            ),
            60,
            hospital,
        ),
        event(
            3,
            dc.MunicipalityAnsweredReadiness(can_receive=False, receive_on=None),
            62,
            municipality,
        ),
    ]


def long_history(dose_changes: int, late: bool = True) -> list[Envelope]:
    """One patient's events in the order the services recorded them (with `late`, some
    reported after events that happened after them)."""
    registry = RegistryApplication(env=POPO)
    registry.record_residence(
        ctx(REGISTER_ADAPTER, "r"), PATIENT, MUNICIPALITY.her_id, date(2000, 1, 1)
    )
    registry.assign_fastlege(
        ctx(REGISTER_ADAPTER, "f"), PATIENT, GP.her_id, GP.hpr or "", date(2015, 1, 1), None
    )
    registry.block(ctx(REGISTER_ADAPTER, "b"), PATIENT, OTHER_GP.her_id, None)
    referrals = ReferralsApplication(env=POPO)
    r = referrals.send_referral(
        ctx(GP, "s", 1), PATIENT, HOSPITAL.her_id, "Smerter", Priority.URGENT, None
    )
    referrals.record_receipt(ctx(HOSPITAL, "rr", 2), r.id, AppRecStatus.OK, [])
    referrals.forward(ctx(HOSPITAL, "fw", 3), r.id, OTHER_HOSPITAL.her_id, "Kapasitet")
    admissions = AdmissionsApplication(env=POPO)
    stay = admissions.admit_patient(
        ctx(HOSPITAL, "a", 48), PATIENT, "Med 3", AdmissionType.ACUTE, None, MUNICIPALITY.her_id,
        True, True,
    )  # fmt: skip
    admissions.send_admission_notice(ctx(HOSPITAL, "n", 49), stay.id)
    medications = MedicationsApplication(env=POPO)
    first = medications.prescribe(ctx(GP, "rx1", 10), PATIENT, "C09AA05", "Ramipril", "5 mg", None)
    ramipril = UUID(next(iter(first.entries)))
    second = medications.prescribe(
        ctx(GP, "rx2", 11), PATIENT, "A10BA02", "Metformin", "500 mg", None
    )
    metformin = UUID(next(e for e in second.entries if e != str(ramipril)))
    for i in range(dose_changes):
        medications.change_dose(ctx(GP, f"d{i}", 100 + i), PATIENT, ramipril, f"{i} mg", None)
        if late and i % 50 == 25:  # a change reported late: it happened before the last few
            medications.change_dose(
                ctx(GP, f"late{i}", 100 + i - 3.5), PATIENT, metformin, f"{i} mg", None
            )
    medications.pause(ctx(HOSPITAL, "p", 100 + dose_changes), PATIENT, metformin, "Kontrast")
    medications.reconcile(
        ctx(MUNICIPALITY, "rec", 101 + dose_changes), PATIENT, [ReconciliationSource.PATIENT], None
    )
    medications.resume(ctx(HOSPITAL, "re", 102 + dose_changes), PATIENT, metformin)
    # the admission report, written before the admission and (with `late`) reported after
    admissions.record_admission_report(ctx(MUNICIPALITY, "ir", 47 if late else 50), stay.id)
    envelopes = [
        e
        for app in (registry, referrals, admissions, medications)
        for e in iter_all_envelopes(app.name, app)
    ]
    envelopes += discharge_events(str(stay.id))
    return sorted(envelopes, key=lambda e: e.recorded_at)


class Projected:
    """One patient's rows as the projector keeps them: each batch added to the stored state
    (through its text), or — when the batch sorts before it — the history folded again."""

    def __init__(self) -> None:
        self.rows: Rows = {}
        self.stored: str | None = None
        self.history: list[Envelope] = []
        self.replays = 0

    def add(self, batch: list[Envelope]) -> None:
        self.history += batch
        if self.stored is not None:
            state = codec.load(self.stored)
            start = state.count
            try:
                timeline = state.add(batch)
            except NotInOrder:
                pass
            else:
                rows = answer_rows(KEY, state)
                for table in REWRITTEN:
                    if table.name != "pathway_patient_states":  # the projector's own
                        self.rows[table.name] = rows.get(table.name, [])
                for name in APPENDED:
                    self.rows[name] = self.rows.get(name, []) + rows.get(name, [])
                self.rows["pathway_timeline"] = self.rows.get(
                    "pathway_timeline", []
                ) + timeline_rows(KEY, start, timeline)
                self.stored = codec.dump(state)
                return
        self.replays += 1
        state, self.rows = replayed(KEY, self.history)
        self.stored = codec.dump(state)


def same_rows(left: Rows, right: Rows) -> None:
    assert sorted(left) == sorted(right)
    for name in left:

        def key(r: dict[str, object]) -> str:
            return repr(sorted(r.items()))

        assert sorted(left[name], key=key) == sorted(right[name], key=key), name


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_long_history_projected_batch_by_batch_equals_one_fold_of_it(seed: int) -> None:
    history = long_history(300)
    rng = random.Random(seed)
    projected = Projected()
    i = 0
    while i < len(history):
        size = rng.choice([1, 2, 7, 40])
        projected.add(history[i : i + size])
        i += size
    same_rows(projected.rows, derive_rows(KEY, history))
    assert projected.stored == codec.dump(replayed(KEY, history)[0])  # the same state, too
    # the late reports sort before what was applied; every other batch went on the state
    assert 1 <= projected.replays <= 10


def test_events_in_clinical_order_never_need_the_history_again() -> None:
    history = long_history(120, late=False)
    clinical = [e for e in history if e.source != "registry"]
    registers = [e for e in history if e.source == "registry"]
    ordered = sorted(
        clinical, key=lambda e: (e.occurred, e.source, e.aggregate_id, e.aggregate_version)
    )
    projected = Projected()
    projected.add(ordered[:1])
    for e in [*ordered[1:], *registers]:  # register events may come at any time
        projected.add([e])
    assert projected.replays == 1  # the first, which has no stored state
    same_rows(projected.rows, derive_rows(KEY, history))


def test_an_event_sorting_before_the_state_is_refused_and_the_state_left_as_it_was() -> None:
    history = long_history(5)
    clinical = sorted(
        (e for e in history if e.source != "registry"),
        key=lambda e: (e.occurred, e.source, e.aggregate_id, e.aggregate_version),
    )
    state, _ = replay(clinical[2:])
    before = codec.dump(take(state))
    with pytest.raises(NotInOrder):
        state.add(clinical[:1])
    assert codec.dump(take(state)) == before


def take(state: PatientState) -> PatientState:
    if state.medications is not None:
        state.medications.take()
    return state


def test_the_stored_medication_versions_answer_the_list_at_any_clinical_time() -> None:
    """For each entry, its latest version at or before T is what the shared fold says at T."""
    history = long_history(60)
    rows = derive_rows(KEY, history)
    versions = rows["pathway_medication_versions"]
    moments = sorted({str(v["valid_from"]) for v in versions})
    probes = [T0 - timedelta(days=1), *(datetime.fromisoformat(m) for m in moments[::7])]
    probes += [datetime.fromisoformat(m) + timedelta(minutes=1) for m in moments[::11]]
    for at in probes:
        expected = medication_list(history, at)
        assert expected is not None
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        latest: dict[str, dict[str, object]] = {}
        for v in sorted(versions, key=lambda v: (str(v["valid_from"]), int(str(v["seq"])))):
            if str(v["valid_from"]) <= stamp:
                latest[str(v["entry_id"])] = v
        assert {k: (v["dose"], v["state"]) for k, v in latest.items()} == {
            k: (e.dose, e.state.value) for k, e in expected.entries.items()
        }, at


def test_the_folding_package_reads_no_other_service() -> None:
    """Its folds read the event contract (shared.events) and shared.medication_list, never
    another service's modules (that it imports no I/O is tests/unit/test_import_rules.py's)."""
    package = Path(__file__).parents[2] / "services" / "pathway" / "folding"
    for module in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                sideways = name.startswith("services.") and not name.startswith(
                    "services.pathway.folding"
                )
                assert not sideways, f"{module.name} imports {name}"


def test_an_actor_is_stored_with_the_same_text_whatever_order_its_keys_came_in() -> None:
    """Live, an actor's keys come in the message's order; on a rebuild, in the store's: the
    medication rows must be the same text either way, or a rebuild differs from the live model
    (the chaos run found this on PostgreSQL's JSON columns)."""
    from services.pathway.rows import _actor

    live = _actor({"her_id": "8134021", "org_kind": "GP", "hpr": "9144900"})
    rebuilt = _actor({"her_id": "8134021", "hpr": "9144900", "org_kind": "GP"})
    assert json.dumps(live) == json.dumps(rebuilt)
