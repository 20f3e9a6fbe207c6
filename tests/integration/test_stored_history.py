"""Stores written by an earlier `main` stay readable: each fixture of tests/fixtures/stores/ is
copied, opened with this checkout's applications (`from_url`, as the processes open them), and
every aggregate loads with the state its commands gave it; the medication list loads from the
snapshots that main stored; the notification logs map to the public contract (upcast to the
newest versions); a rebuild of the pathway read model from them answers `GetPathway` with the
patient's whole story. A change of an event's or a snapshot's stored shape that old stores
cannot follow fails here (add an upcaster: docs/events.md, "Versions").

The fixture of 402824b was written by tests/fixtures/stores/make_fixture.py at that commit
(README.md beside it). SQLite only: the stored shapes are the same on PostgreSQL."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import grpc
import pytest
from eventsourcing.application import Repository
from google.protobuf.timestamp_pb2 import Timestamp

from carepath.v1 import common_pb2, medications_pb2, pathway_pb2, pathway_pb2_grpc, referrals_pb2
from services.admissions.application import AdmissionsApplication
from services.admissions.domain import Stay, StayState
from services.bootstrap import DOMAIN_SERVICES
from services.discharges.application import DischargesApplication
from services.discharges.domain import Destination, DischargeState
from services.medications.application import MedicationsApplication
from services.medications.domain import MedicationList, medication_list_id
from services.pathway import api as pathway_api
from services.pathway import migrate, readmodel
from services.pathway.rebuild import rebuild
from services.referrals.application import ReferralsApplication
from services.referrals.domain import ReferralState
from services.registry.application import RegistryApplication
from services.registry.domain import Organisation, RegistryKind, organisation_id_for
from shared import bootstrap
from shared.actors import Actor, OrgKind
from shared.domain import CommandContext
from shared.events import parse
from shared.events import registry as registry_events
from shared.events.admissions import PatientAdmitted
from shared.ids import FNR_SYSTEM
from shared.outbox import iter_all_envelopes
from shared.snapshots import CarepathSnapshot
from tests.support import REGISTER_ADAPTER, auth, grpc_server, make_fnr

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stores"
#: The stores main wrote at 402824b (make_fixture.py there).
AT_402824B = FIXTURES / "2026-11-30-402824b"

#: The fixtures' patient, the demo's of their time: a classic number (they predate synthetic
#: ones), which stays in them since ids derived from it are stored too (the medication list's,
#: the registration's, uuid5 of the number).
PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(12, 3, 42, 480, synthetic=False)}
GP = Actor(her_id="8134021", org_kind=OrgKind.GP, hpr="9144900")
HOSPITAL_A = Actor(her_id="59", org_kind=OrgKind.HOSPITAL, hpr="4210953")
HOSPITAL_B = "90234"
MUNICIPALITY = Actor(her_id="4201", org_kind=OrgKind.MUNICIPALITY, hpr="1203921")
NURSING_HOME = "88001"

# The ids the fixture's commands derived (fixed command ids: the same on every run).
CANCELLED_REFERRAL = UUID("1048c87d-88d1-5752-905e-4464cd92cef5")
CANCER_REFERRAL = UUID("ad79fb89-f2b5-50d4-82da-661463aabac7")
STAY = UUID("256c04c2-9da7-5785-8def-f5c1321c00a9")
DISCHARGE = UUID("b5520d54-c5a4-5970-97a3-35d75c119994")
WARFARIN = UUID("e023f910-7335-525e-9f3b-7cceadd61a46")
METFORMIN = UUID("49e5c39b-7efd-538c-a2f6-6e0def285ade")
RAMIPRIL = UUID("7adf9456-1a93-5bfd-82b2-aabc3970c8ec")
LIST_ID = medication_list_id(PATIENT)

#: The public events each store's notification log holds (bookkeeping events are not public).
PUBLISHED = {
    "referrals": Counter(
        ReferralSent=2,
        ReferralCancelled=1,
        ReferralReceiptRecorded=2,
        ReferralForwarded=1,
        ReferralAccepted=1,
        CancerPathwayMilestoneReached=3,
    ),
    "admissions": Counter(
        PatientAdmitted=1,
        AdmissionReportReceived=1,
        AdmissionNoticeSent=1,
        MessageReceiptRecorded=1,
        HealthInformationSent=1,
        PatientTransferred=1,
        StayClosed=1,
    ),
    "discharges": Counter(
        PatientDeclaredReadyForDischarge=1,
        MunicipalityAnsweredReadiness=1,
        PatientDischarged=1,
        EpicrisisSent=1,
        MessageReceiptRecorded=1,
    ),
    "medications": Counter(
        MedicationListStarted=1,
        MedicationPrescribed=3,
        MedicationDoseChanged=21,
        MedicationPaused=1,
        MedicationResumed=1,
        MedicationDiscontinued=1,
        MedicationListReconciled=1,
    ),
    "registry": Counter(
        OrganisationRegistered=7,
        ResidenceRecorded=1,
        FastlegeAssigned=1,
        AccessBlocked=1,
        AccessBlockLifted=1,
    ),
    "municipal": Counter(),  # no municipal service at 402824b: its store opens empty
}


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The fixture's stores, copied (a test never changes the committed files), opened with
    this checkout's applications."""
    copy = tmp_path / "stores"
    shutil.copytree(AT_402824B, copy)
    apps = {
        name: bootstrap.application(service.application, url=f"sqlite:///{copy}/{name}.sqlite")
        for name, service in DOMAIN_SERVICES.items()
    }
    yield apps
    for app in apps.values():
        app.close()


def at(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def test_every_aggregate_loads_with_the_state_its_commands_gave_it(
    stores: dict[str, Any],
) -> None:
    referrals: ReferralsApplication = stores["referrals"]
    cancelled = referrals.get_referral(CANCELLED_REFERRAL)
    assert cancelled.state is ReferralState.CANCELLED
    referral = referrals.get_referral(CANCER_REFERRAL)
    assert referral.state is ReferralState.ACCEPTED
    assert (referral.sender_her_id, referral.receiver_her_id) == (GP.her_id, HOSPITAL_B)
    assert referral.planned_date == date(2024, 9, 10)
    assert referral.cancer_milestones == {
        "FIRST_APPOINTMENT": "2024-09-10T10:00:00+00:00",
        "INVESTIGATION_COMPLETED": "2024-09-23T10:00:00+00:00",
        "TREATMENT_START": "2024-10-07T10:00:00+00:00",
    }

    admissions: AdmissionsApplication = stores["admissions"]
    stay = admissions.get_stay(STAY)
    assert stay.state is StayState.CLOSED
    assert (stay.hospital_her_id, stay.ward) == (HOSPITAL_A.her_id, "Medisinsk post 3")
    assert stay.municipality_her_id == MUNICIPALITY.her_id
    assert sorted(m["type"] for m in stay.messages.values()) == [
        "ADMISSION_NOTICE",
        "ADMISSION_REPORT",
        "HEALTH_INFORMATION",
    ]
    (notice,) = (m for m in stay.messages.values() if m["type"] == "ADMISSION_NOTICE")
    assert notice["receipt"]["status"] == "OK"
    assert [s.id for s in admissions.list_stays(PATIENT)] == [STAY]

    discharges: DischargesApplication = stores["discharges"]
    discharge = discharges.get_discharge(STAY)
    assert discharge.state is DischargeState.DISCHARGED
    assert discharge.destination is Destination.SHORT_TERM_NURSING_HOME
    assert discharge.destination_her_id == NURSING_HOME
    (period,) = discharge.readiness_periods
    assert period["answer"]["receive_on"] == "2024-11-19"
    known = discharges.stays.get(STAY)
    assert known is not None and known.state == "CLOSED"

    registry: RegistryApplication = stores["registry"]
    registration = registry.get_registration(PATIENT)
    assert [p.her_id for p in registration.residence_periods()] == [MUNICIPALITY.her_id]
    assert [p.her_id for p in registration.fastlege_periods()] == [GP.her_id]
    organisations = {o.her_id: o for o in registry.organisations([MUNICIPALITY.her_id, "59"])}
    assert organisations[MUNICIPALITY.her_id].name == "Fjordvik kommune"
    assert organisations[MUNICIPALITY.her_id].orgnr == "883016610"
    assert registry.orgnr_holder("819935181") == "59"
    blocks = registry.get_blocks(PATIENT)
    assert blocks is not None
    assert [b["lifted_at"] for b in blocks.blocks.values()] == ["2024-05-03T09:00:00+00:00"]


def test_the_medication_list_loads_from_the_stored_snapshots_and_takes_new_commands(
    stores: dict[str, Any],
) -> None:
    """The snapshots main stored (versions 10 and 20) read with this checkout's aggregate, and
    give exactly the list a replay of the stored events gives, now and at past versions."""
    medications: MedicationsApplication = stores["medications"]
    assert medications.snapshots is not None
    taken = [s for s in medications.snapshots.get(LIST_ID) if isinstance(s, CarepathSnapshot)]
    assert [s.originator_version for s in taken] == [10, 20]

    def replayed(version: int | None = None) -> MedicationList:
        aggregate: MedicationList = Repository(event_store=medications.events).get(
            LIST_ID, version=version
        )
        return aggregate

    for snapshot in taken:  # each stored snapshot on its own
        from_snapshot = snapshot.mutate(None)
        assert vars(from_snapshot) == vars(replayed(snapshot.originator_version))
    for version in (10, 15, 20, 29):  # from a snapshot alone, a snapshot and later events
        loaded = medications.load(MedicationList, LIST_ID, "medication list", version=version)
        assert loaded.version == version
        assert vars(loaded) == vars(replayed(version))
        assert loaded.view() == replayed(version).view()

    now = medications.get_list(PATIENT)
    doses = {e.name: (e.dose, e.state) for e in now.entries.values()}
    assert doses == {
        "Warfarin": ("6.25 mg x 1", "DISCONTINUED"),
        "Metformin": ("500 mg x 2", "ACTIVE"),
        "Ramipril": ("2.5 mg x 1", "ACTIVE"),
    }
    before = medications.get_list(PATIENT, as_of=at(2024, 7, 20))
    assert {e.name: e.dose for e in before.entries.values()} == {
        "Warfarin": "3.75 mg x 1",
        "Metformin": "500 mg x 2",
        "Ramipril": "5 mg x 1",
    }
    # a command continues the stored history (loaded from the snapshot of version 20)
    ctx = CommandContext("after-upgrade", at(2024, 12, 2, 9), GP, "stored-history")
    medications.change_dose(ctx, PATIENT, RAMIPRIL, "5 mg x 1", "Blodtrykket normalt igjen")
    after = medications.load(MedicationList, LIST_ID, "medication list")
    assert after.version == 30
    assert vars(after) == vars(replayed())


def test_the_notification_logs_read_as_the_newest_contract(stores: dict[str, Any]) -> None:
    for source, app in stores.items():
        envelopes = list(iter_all_envelopes(source, app))
        # A service younger than the fixture (correspondence) opens an empty store.
        assert Counter(e.event_type for e in envelopes) == PUBLISHED.get(source, Counter()), source
        for envelope in envelopes:  # as the relay publishes them, they pass every consumer's check
            assert parse(envelope.to_json(), f"{source}.events", envelope.event_type) == envelope
    directory = [
        e.payload(registry_events.OrganisationRegistered)
        for e in iter_all_envelopes("registry", stores["registry"])
        if e.event_type == "OrganisationRegistered"
    ]
    assert {(o.her_id, o.orgnr) for o in directory} >= {("4201", "883016610"), ("59", "819935181")}


def test_the_stored_patient_admitted_of_version_1_comes_out_as_version_2(
    stores: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """402824b stored the stay's PatientAdmitted without a class version and with
    `municipality_her_id` (version 1): the event class's upcaster renames it as it is read,
    the stay holds its home municipality, and the relay publishes PatientAdmitted version 2
    with `home_municipality_her_id`."""
    admissions: AdmissionsApplication = stores["admissions"]
    (stored,) = [
        e
        for e in admissions.recorder.select_events(STAY)
        if e.topic.endswith("Stay.PatientAdmitted")
    ]
    state = json.loads(stored.state)
    assert ("class_version" in state, state["municipality_her_id"]) == (False, "4201")

    upcast = Stay.PatientAdmitted.upcast_v1_v2
    calls: list[dict[str, Any]] = []

    def counted(state: dict[str, Any]) -> None:
        upcast(state)
        calls.append(dict(state))

    monkeypatch.setattr(Stay.PatientAdmitted, "upcast_v1_v2", staticmethod(counted))
    stay = admissions.get_stay(STAY)
    assert [c["home_municipality_her_id"] for c in calls] == [MUNICIPALITY.her_id]
    assert all("municipality_her_id" not in c for c in calls)
    assert stay.municipality_her_id == MUNICIPALITY.her_id

    (admitted,) = [
        e for e in iter_all_envelopes("admissions", admissions) if e.event_type == "PatientAdmitted"
    ]
    assert admitted.schema_version == 2
    assert admitted.payload(PatientAdmitted).home_municipality_her_id == MUNICIPALITY.her_id
    assert json.loads(admitted.to_json())["data"]["home_municipality_her_id"] == "4201"


@pytest.fixture
def upcast_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every stored directory event the upcasters bring from class version 1 to 2 (the event
    type and the organisation's HER-id or new name), counted as they run."""
    calls: list[tuple[str, str]] = []
    for cls, key in (
        (Organisation.OrganisationRegistered, "her_id"),
        (Organisation.OrganisationChanged, "name"),
    ):
        upcast = cls.upcast_v1_v2

        def counted(
            state: dict[str, Any], upcast: Any = upcast, cls: Any = cls, key: str = key
        ) -> None:
            calls.append((cls.__name__, state[key]))
            upcast(state)

        monkeypatch.setattr(cls, "upcast_v1_v2", staticmethod(counted))
    return calls


def test_the_stored_organisation_events_are_read_through_their_upcaster(
    stores: dict[str, Any], upcast_calls: list[tuple[str, str]]
) -> None:
    """The directory's events as main stored them at 402824b (class version 1, with `orgnr`)
    are brought to class version 2 by the event class's own upcaster (eventsourcing's)."""
    registry: RegistryApplication = stores["registry"]
    (event, *_) = registry.events.get(organisation_id_for("4201"))
    assert upcast_calls == [("OrganisationRegistered", "4201")]
    assert isinstance(event, Organisation.OrganisationRegistered)
    assert type(event).class_version == 2
    assert event.orgnr == "883016610"


#: The registry's store main wrote at d607f53, before organisation numbers.
AT_D607F53 = FIXTURES / "2026-11-30-d607f53-registry"
DEMO_DIRECTORY = ("112374", "4201", "88001", "4301", "8134021", "59", "90234")


@pytest.fixture
def registry_before_orgnr(tmp_path: Path) -> Iterator[RegistryApplication]:
    copy = tmp_path / "before-orgnr"
    shutil.copytree(AT_D607F53, copy)
    app = RegistryApplication.from_url(f"sqlite:///{copy}/registry.sqlite")
    yield app
    app.close()


def test_a_directory_stored_before_organisation_numbers_reads_with_none_and_takes_them(
    registry_before_orgnr: RegistryApplication, upcast_calls: list[tuple[str, str]]
) -> None:
    """Stored without the field (class version 1, before 428c37b), each organisation reads
    through the upcaster with no number, publishes as OrganisationRegistered v2 with `orgnr`
    null, and takes a number by a command of this checkout (stored at class version 2, read
    without upcasting)."""
    registry = registry_before_orgnr
    organisations = registry.organisations(DEMO_DIRECTORY)
    assert [(o.her_id, o.orgnr) for o in organisations] == [(h, None) for h in DEMO_DIRECTORY]
    assert sorted(upcast_calls) == sorted(("OrganisationRegistered", h) for h in DEMO_DIRECTORY)
    published = [
        e.payload(registry_events.OrganisationRegistered)
        for e in iter_all_envelopes("registry", registry)
        if e.event_type == "OrganisationRegistered"
    ]
    assert sorted((o.her_id, o.orgnr) for o in published) == sorted(
        (h, None) for h in DEMO_DIRECTORY
    )
    assert [p.her_id for p in registry.get_registration(PATIENT).residence_periods()] == ["4201"]

    upcast_calls.clear()
    ctx = CommandContext("orgnr-4201", at(2024, 12, 2, 9), REGISTER_ADAPTER, "stored-history")
    registry.register_organisation(
        ctx, "4201", RegistryKind.MUNICIPALITY, "Fjordvik kommune", None, "883016610"
    )
    (renumbered,) = registry.organisations(["4201"])
    assert (renumbered.orgnr, renumbered.version) == ("883016610", 2)
    assert registry.orgnr_holder("883016610") == "4201"
    (_, changed) = registry.events.get(organisation_id_for("4201"))
    assert isinstance(changed, Organisation.OrganisationChanged)
    assert changed.orgnr == "883016610"
    # the new event is stored at class version 2: read again, only the old one is upcast
    (_, stored) = registry.recorder.select_events(organisation_id_for("4201"))
    assert b'"class_version":2' in stored.state
    assert {call for call in upcast_calls} == {("OrganisationRegistered", "4201")}


@pytest.fixture
def rebuilt(
    tmp_path: Path, stores: dict[str, Any]
) -> Iterator[pathway_pb2_grpc.PathwayServiceStub]:
    """The pathway read model rebuilt from the fixture's stores, served by the pathway's gRPC
    server as its process serves it."""
    urls = {
        name: f"sqlite:///{tmp_path}/{name}.sqlite" for name in ("pathway", "audit", "revocations")
    }
    engine = readmodel.create_engine(urls["pathway"])
    migrate.upgrade(engine)
    assert rebuild(engine, stores) == sum(sum(c.values()) for c in PUBLISHED.values())
    with grpc_server(
        "stored-history", pathway_api, engine, urls, ACCESS_DATABASE_URL=urls["pathway"]
    ) as server:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        yield pathway_pb2_grpc.PathwayServiceStub(channel)
        channel.close()
    engine.dispose()


def timestamp(year: int, month: int, day: int) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(at(year, month, day, 11))
    return t


def test_a_rebuild_from_the_stored_history_tells_the_whole_pathway(
    rebuilt: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    def get(**kw: Any) -> pathway_pb2.Pathway:
        request = pathway_pb2.GetPathwayRequest(
            patient=common_pb2.PatientIdentifier(**PATIENT),
            purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
            **kw,
        )
        reply: pathway_pb2.Pathway = rebuilt.GetPathway(request, metadata=auth(MUNICIPALITY))
        return reply

    reply = get()
    assert reply.access_basis == common_pb2.ACCESS_BASIS_RESIDENCE_MUNICIPALITY
    assert (reply.relations.residence_municipality_her_id, reply.relations.fastlege_her_id) == (
        MUNICIPALITY.her_id,
        GP.her_id,
    )
    # the referrals: the cancer-pathway referral accepted at hospital B, the other cancelled
    assert [(r.referral_id, r.state) for r in reply.summary.referrals] == [
        (str(CANCER_REFERRAL), referrals_pb2.REFERRAL_STATE_ACCEPTED),
        (str(CANCELLED_REFERRAL), referrals_pb2.REFERRAL_STATE_CANCELLED),
    ]
    assert len(reply.summary.referrals[0].cancer_milestones) == 3
    # the stay, closed by the discharge to a short-term place, and its payment days
    (stay,) = reply.stays
    assert stay.admitted_at.ToDatetime().date() == date(2024, 11, 12)
    assert stay.closed_at.ToDatetime().date() == date(2024, 11, 19)
    assert reply.location.kind == pathway_pb2.LOCATION_KIND_SHORT_TERM_NURSING_HOME
    assert reply.location.her_id == NURSING_HOME
    (payment,) = reply.payments
    assert (payment.days, payment.ongoing) == (4, False)
    # stored before the readiness notice carried its content (PatientDeclaredReadyForDischarge
    # version 1): it reads with none recorded, so the conditions cannot be shown met
    assert not payment.payable
    assert list(payment.not_payable_reasons) == [
        pathway_pb2.NOT_PAYABLE_REASON_READINESS_NOTICE_INCOMPLETE
    ]
    # the messages and their receipts
    receipts = {m.name: m.receipt for m in reply.messages}
    assert receipts["Henvisning"] == common_pb2.APP_REC_STATUS_OK_ERROR_IN_PART
    assert receipts["Melding om innlagt pasient"] == common_pb2.APP_REC_STATUS_OK
    assert receipts["Epikrise"] == common_pb2.APP_REC_STATUS_UNSPECIFIED
    # the medication list now and as it stood before the stay
    doses = {e.medication.name: (e.dose, e.state) for e in reply.medications.entries}
    assert doses == {
        "Warfarin": ("6.25 mg x 1", medications_pb2.MEDICATION_STATE_DISCONTINUED),
        "Metformin": ("500 mg x 2", medications_pb2.MEDICATION_STATE_ACTIVE),
        "Ramipril": ("2.5 mg x 1", medications_pb2.MEDICATION_STATE_ACTIVE),
    }
    before = get(medications_at=timestamp(2024, 7, 20))
    assert {e.medication.name: e.dose for e in before.medications.entries} == {
        "Warfarin": "3.75 mg x 1",
        "Metformin": "500 mg x 2",
        "Ramipril": "5 mg x 1",
    }
    # the open tasks: the receipts still awaited
    receipt = pathway_pb2.TASK_KIND_MESSAGE_RECEIPT
    assert sorted((t.kind, t.waiting_on.her_id, t.aggregate_id) for t in reply.tasks) == [
        (receipt, MUNICIPALITY.her_id, str(STAY)),  # the health information
        (receipt, HOSPITAL_A.her_id, str(STAY)),  # the admission report
        (receipt, GP.her_id, str(DISCHARGE)),  # the epicrisis
        (receipt, NURSING_HOME, str(DISCHARGE)),  # the discharge report
    ]
    # the timeline: every clinical event of the four clinical services (register facts are not)
    clinical = [c for source, c in PUBLISHED.items() if source != "registry"]
    assert Counter(e.event_type for e in reply.timeline) == sum(clinical, Counter())
