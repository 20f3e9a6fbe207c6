"""The shared medication list in the patient's pathway: changed in hospital, seen by the
coordinator as it is now and as it was on any day. GP is the patient's fastlege (registered as
the register adapter does); the hospital changes the dose while the patient is admitted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    medications_pb2,
    medications_pb2_grpc,
    pathway_pb2,
    pathway_pb2_grpc,
)
from services.pathway import readmodel
from shared.access.model import Basis
from shared.api import timestamp as ts
from shared.ids import FNR_SYSTEM
from tests.conftest import GP, HOSPITAL, MUNICIPALITY
from tests.support import (
    NOW,
    Harness,
    auth,
    make_fnr,
    meta,
    wait_for,
)

PATIENT = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(12, 3, 42, 480))


REGISTERED = {"system": PATIENT.system, "value": PATIENT.value}


@pytest.fixture(autouse=True)
def registered(system: Harness) -> None:
    system.register(REGISTERED, gp=GP)


def pathway(system: Harness, **kw: object) -> pathway_pb2.Pathway:
    stub = pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server))
    return stub.GetPathway(
        pathway_pb2.GetPathwayRequest(
            patient=PATIENT, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION, **kw
        ),
        metadata=auth(GP),
    )


def test_a_dose_changed_in_hospital_shows_now_and_the_old_dose_as_of_before(
    system: Harness,
) -> None:
    meds = medications_pb2_grpc.MedicationServiceStub(system.channel(system.servers["medications"]))
    listed = meds.PrescribeMedication(
        medications_pb2.PrescribeMedicationRequest(
            metadata=meta("rx-1", NOW - timedelta(days=10)),
            patient=PATIENT,
            medication=medications_pb2.Medication(atc_code="C09AA05", name="Ramipril"),
            dose="5 mg x 1",
        ),
        metadata=auth(GP),
    )
    entry_id = listed.entries[0].entry_id
    admissions = admissions_pb2_grpc.AdmissionServiceStub(
        system.channel(system.servers["admissions"])
    )
    admissions.AdmitPatient(
        admissions_pb2.AdmitPatientRequest(
            metadata=meta("admit", NOW - timedelta(days=3)),
            patient=PATIENT,
            ward="Medisinsk sengepost 3",
            admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
            municipality_her_id=MUNICIPALITY.her_id,
        ),
        metadata=auth(HOSPITAL),
    )
    system.wait_for_relationship(REGISTERED, HOSPITAL.her_id, Basis.STAY_HOSPITAL)
    meds.ChangeDose(
        medications_pb2.ChangeDoseRequest(
            metadata=meta("dose-1", NOW - timedelta(days=2)),
            patient=PATIENT,
            entry_id=entry_id,
            dose="2.5 mg x 1",
            reason="Lavt blodtrykk",
        ),
        metadata=auth(HOSPITAL),
    )

    def both_events() -> pathway_pb2.Pathway | None:
        try:
            reply = pathway(system)
        except Exception:  # NOT_FOUND until the first event is projected
            return None
        changed = any(e.event_type == "MedicationDoseChanged" for e in reply.timeline)
        return reply if changed else None

    now = wait_for(both_events, what="the medication events in the pathway")
    summaries = [e.summary for e in now.timeline]
    assert "Legemiddel forskrevet: Ramipril (C09AA05), 5 mg x 1" in summaries
    assert "Dosering endret for Ramipril (C09AA05): 2.5 mg x 1" in summaries
    assert [e.dose for e in now.medications.entries] == ["2.5 mg x 1"]
    assert now.medications.entries[0].source.her_id == GP.her_id

    before = pathway(system, medications_at=ts(NOW - timedelta(days=5)))
    assert [e.dose for e in before.medications.entries] == ["5 mg x 1"]
    ten_years_ago = pathway(system, medications_at=ts(NOW - timedelta(days=3650)))
    assert list(ten_years_ago.medications.entries) == []


def test_the_pathway_and_its_medication_list_are_read_without_the_event_history(
    system: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GetPathway maps the read model's rows: not one read of the patient's events, for the
    list now nor at an earlier clinical time (only an `as_of` answer replays them)."""
    meds = medications_pb2_grpc.MedicationServiceStub(system.channel(system.servers["medications"]))
    meds.PrescribeMedication(
        medications_pb2.PrescribeMedicationRequest(
            metadata=meta("rx-spy", NOW - timedelta(days=10)),
            patient=PATIENT,
            medication=medications_pb2.Medication(atc_code="A10BA02", name="Metformin"),
            dose="500 mg x 2",
        ),
        metadata=auth(GP),
    )
    wait_for(lambda: _listed(system), what="the medication list in the pathway")
    reads: list[object] = []
    histories = readmodel.histories

    def spy(*args: object, **kwargs: object) -> object:
        reads.append(args)
        return histories(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(readmodel, "histories", spy)
    now = pathway(system)
    before = pathway(system, medications_at=ts(NOW - timedelta(days=11)))
    assert not reads
    assert [e.dose for e in now.medications.entries] == ["500 mg x 2"]
    assert list(before.medications.entries) == []
    pathway(system, as_of=ts(datetime.now(UTC)))
    assert reads  # the recorded-time answer replays the history


def _listed(system: Harness) -> bool:
    try:
        return bool(pathway(system).medications.entries)
    except Exception:  # NOT_FOUND until the first event is projected
        return False
