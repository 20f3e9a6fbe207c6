"""Care relationships come from the registers and from what organisations did — never from an
event's fields naming another organisation, nor from an event's actor (the pure fold)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID

from services.admissions.application import AdmissionsApplication
from services.admissions.domain import AdmissionType, CloseReason
from services.medications.application import MedicationsApplication
from services.pathway.folding.pathway import fold
from services.pathway.rows import derive_rows
from services.referrals.application import ReferralsApplication
from services.referrals.domain import Priority
from services.registry.application import RegistryApplication
from shared.events import Envelope
from shared.ids import FNR_SYSTEM
from shared.outbox import iter_all_envelopes
from shared.registers import Record, separate, successive
from shared.store import CarepathApplication
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_GP, OTHER_MUNICIPALITY
from tests.support import REGISTER_ADAPTER, ctx, make_fnr

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(7, 7, 47, 480)}
KEY = f"{PATIENT['system']}|{PATIENT['value']}"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


def envelopes(*apps: CarepathApplication) -> list[Envelope]:
    return [e for app in apps for e in iter_all_envelopes(app.name, app)]


def relationships(history: list[Envelope]) -> set[tuple[str, str, str | None]]:
    rows = derive_rows(KEY, history)["access_relationships"]
    return {(str(r["her_id"]), str(r["basis"]), r["valid_to"]) for r in rows}  # type: ignore[misc]


def registered() -> RegistryApplication:
    registry = RegistryApplication(env=POPO)
    registry.record_residence(
        ctx(REGISTER_ADAPTER, "r", T0), PATIENT, MUNICIPALITY.her_id, date(2000, 1, 1)
    )
    registry.assign_fastlege(
        ctx(REGISTER_ADAPTER, "f", T0), PATIENT, GP.her_id, GP.hpr or "", date(2015, 1, 1), None
    )
    return registry


def test_the_registers_name_the_municipality_and_the_fastlege() -> None:
    history = envelopes(registered())
    assert relationships(history) == {
        (MUNICIPALITY.her_id, "RESIDENCE_MUNICIPALITY", None),
        (GP.her_id, "FASTLEGE", None),
    }
    pathway = fold(history)
    assert pathway.municipality_her_id == MUNICIPALITY.her_id
    assert not pathway.timeline  # register facts are not clinical events


def test_an_admission_naming_another_municipality_gives_it_nothing() -> None:
    """The takeover route of issue 8: the hospital names a municipality; until a message is
    actually sent there, that municipality has no relationship and the registered one keeps
    its own."""
    admissions = AdmissionsApplication(env=POPO)
    stay = admissions.admit_patient(
        ctx(HOSPITAL, "a", T0),
        PATIENT,
        "Med 3",
        AdmissionType.ACUTE,
        None,
        OTHER_MUNICIPALITY.her_id,
        True,
        False,
    )
    history = envelopes(registered(), admissions)
    found = relationships(history)
    assert not [r for r in found if r[0] == OTHER_MUNICIPALITY.her_id]
    assert (MUNICIPALITY.her_id, "RESIDENCE_MUNICIPALITY", None) in found
    assert fold(history).municipality_her_id == MUNICIPALITY.her_id
    # a message actually sent there makes it a receiver while the stay is open
    admissions.send_admission_notice(ctx(HOSPITAL, "n", T0, hours=1), stay.id)
    admissions.close_stay(ctx(HOSPITAL, "c", T0, hours=30), stay.id, CloseReason.DISCHARGED)
    closed = (T0 + timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    found = relationships(envelopes(registered(), admissions))
    assert (OTHER_MUNICIPALITY.her_id, "MESSAGE_RECEIVER", closed) in found
    window = (T0 + timedelta(hours=30, days=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert (HOSPITAL.her_id, "STAY_HOSPITAL", window) in found


def test_a_municipal_actor_on_an_event_makes_no_home_municipality() -> None:
    """The other takeover route: a command from another municipality's doctor (an event whose
    actor is that municipality) does not make it the patient's municipality."""
    medications = MedicationsApplication(env=POPO)
    medications.prescribe(
        ctx(OTHER_MUNICIPALITY, "rx", T0), PATIENT, "A10BA02", "Metformin", "500 mg x 2", None
    )
    history = envelopes(registered(), medications)
    assert fold(history).municipality_her_id == MUNICIPALITY.her_id
    assert not [r for r in relationships(history) if r[0] == OTHER_MUNICIPALITY.her_id]


def test_a_referral_makes_its_sender_and_receiver_parties_while_it_is_open() -> None:
    referrals = ReferralsApplication(env=POPO)
    r = referrals.send_referral(
        ctx(OTHER_GP, "s", T0), PATIENT, HOSPITAL.her_id, "Smerter", Priority.ROUTINE, None
    )
    found = relationships(envelopes(referrals))
    assert (OTHER_GP.her_id, "REFERRAL_SENDER", None) in found
    assert (HOSPITAL.her_id, "REFERRAL_RECEIVER", None) in found
    referrals.cancel(ctx(OTHER_GP, "x", T0, hours=5), r.id, "Bedring")
    ended = (T0 + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    found = relationships(envelopes(referrals))
    assert (OTHER_GP.her_id, "REFERRAL_SENDER", ended) in found
    assert (HOSPITAL.her_id, "REFERRAL_RECEIVER", ended) in found


def test_blocks_in_force_are_kept_and_lifted_ones_dropped() -> None:
    registry = registered()
    blocks = registry.block(ctx(REGISTER_ADAPTER, "b1", T0), PATIENT, OTHER_GP.her_id, None)
    registry.block(ctx(REGISTER_ADAPTER, "b2", T0), PATIENT, None, "1234567")
    lifted = next(b for b, v in blocks.blocks.items() if v["her_id"] == OTHER_GP.her_id)
    registry.lift_block(ctx(REGISTER_ADAPTER, "l1", T0), PATIENT, UUID(lifted))
    rows = derive_rows(KEY, envelopes(registry))["access_blocks"]
    assert [(r["her_id"], r["hpr"]) for r in rows] == [(None, "1234567")]


def test_residence_and_fastlege_periods_follow_each_other() -> None:
    periods = successive(
        [
            Record("4201", date(2000, 1, 1)),
            Record("4301", date(2024, 5, 1)),
            Record("4401", date(2024, 5, 1)),
        ]
    )
    assert [(p.her_id, p.valid_from, p.valid_to) for p in periods] == [
        ("4201", date(2000, 1, 1), date(2024, 4, 30)),
        ("4401", date(2024, 5, 1), None),  # recorded again for the same day: corrected
    ]
    stays = separate(
        [Record("4301", date(2024, 1, 1)), Record("4301", date(2024, 1, 1), date(2024, 2, 1))]
    )
    assert [(p.her_id, p.valid_to) for p in stays] == [("4301", date(2024, 2, 1))]
