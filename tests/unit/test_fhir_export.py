"""The pathway as a FHIR R4B Bundle (services/pathway/fhir.py): a home-nursing patient's
referral, hospital stay, PLO messages with their receipts, open tasks and medication list, as
GetPathway answers them, come out as the FHIR resources another system expects, with the
Norwegian identifier systems, and the Bundle reads back through fhir.resources."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from carepath.v1 import common_pb2, medications_pb2, pathway_pb2, referrals_pb2, registry_pb2
from services.pathway import fhir
from shared.api import timestamp as ts
from shared.ids import DNR_SYSTEM, FNR_SYSTEM, HER_SYSTEM, HNR_SYSTEM, HPR_SYSTEM, ORGNR_SYSTEM
from tests.support import make_fnr, make_hnr

AS_OF = datetime(2024, 11, 20, 9, 0, tzinfo=UTC)
GP, HOSPITAL, MUNICIPALITY = "8134021", "59", "4201"
GP_HPR, DOCTOR_HPR = "9144900", "4210953"
REFERRAL = "0f0e3a52-8a63-4b53-9d2a-6d7bbf3b3a10"
STAY = "4c1f2d9e-0a8b-4c5e-9f3d-2b1a7e6d5c40"
LIST = "7a9b8c6d-5e4f-4a3b-8c2d-1e0f9a8b7c60"
METFORMIN, RAMIPRIL = "1d2c3b4a-5f6e-4d7c-8b9a-0e1f2d3c4b50", "2e3d4c5b-6a7f-4e8d-9c0b-1f2e3d4c5b60"


def at(days_ago: float) -> Any:
    return ts(AS_OF - timedelta(days=days_ago))


def actor(her_id: str, kind: int, hpr: str = "") -> common_pb2.Actor:
    return common_pb2.Actor(
        organisation=common_pb2.Organisation(her_id=her_id, kind=kind),  # type: ignore[arg-type]
        person=common_pb2.HealthPersonnel(hpr_number=hpr),
    )


GP_ACTOR = actor(GP, common_pb2.ORGANISATION_KIND_GP, GP_HPR)
HOSPITAL_ACTOR = actor(HOSPITAL, common_pb2.ORGANISATION_KIND_HOSPITAL, DOCTOR_HPR)
HOSPITAL_SYSTEM = actor(HOSPITAL, common_pb2.ORGANISATION_KIND_HOSPITAL)


def event(n: int, event_type: str, who: common_pb2.Actor, days_ago: float, aggregate: str) -> Any:
    return pathway_pb2.TimelineEntry(
        event_id=f"{aggregate}:{n}",
        event_type=event_type,
        source="referrals" if aggregate == REFERRAL else "admissions",
        level=who.organisation.kind,
        actor=who,
        occurred_at=at(days_ago),
        recorded_at=at(days_ago),
        aggregate_id=aggregate,
        summary=f"{event_type} (syntetisk)",
    )


def rich_pathway(patient: common_pb2.PatientIdentifier | None = None) -> pathway_pb2.Pathway:
    """Every part of a pathway filled: a referral, a stay still open, two messages (one
    answered), two open tasks, two medications (one paused) and a reconciliation."""
    p = pathway_pb2.Pathway(
        patient=patient
        or common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(12, 3, 42, 480)),
        as_of=ts(AS_OF),
        municipality_her_id=MUNICIPALITY,
        relations=pathway_pb2.CareRelations(
            residence_municipality_her_id=MUNICIPALITY,
            fastlege_her_id=GP,
            fastlege_hpr_number=GP_HPR,
        ),
        access_basis=common_pb2.ACCESS_BASIS_RESIDENCE_MUNICIPALITY,
    )
    p.timeline.extend(
        [
            event(1, "ReferralSent", GP_ACTOR, 30, REFERRAL),
            event(2, "ReferralReceived", HOSPITAL_SYSTEM, 29, REFERRAL),
            pathway_pb2.TimelineEntry(
                event_id=f"{LIST}:1",
                event_type="MedicationPrescribed",
                source="medications",
                level=common_pb2.ORGANISATION_KIND_GP,
                actor=GP_ACTOR,
                occurred_at=at(20),
                recorded_at=at(20),
                aggregate_id=LIST,
                summary="Metformin forskrevet",
            ),
            event(1, "PatientAdmitted", HOSPITAL_ACTOR, 3, STAY),
            event(2, "AdmissionNoticeSent", HOSPITAL_SYSTEM, 2.9, STAY),
        ]
    )
    p.summary.open_referrals = 1
    p.summary.referrals.append(
        pathway_pb2.ReferralSummary(
            referral_id=REFERRAL,
            state=referrals_pb2.REFERRAL_STATE_RECEIVED,
            priority=referrals_pb2.REFERRAL_PRIORITY_URGENT,
            cancer_pathway=referrals_pb2.CANCER_PATHWAY_COLORECTAL,
            sender_her_id=GP,
            receiver_her_id=HOSPITAL,
            sent_at=at(30),
            updated_at=at(29),
            open=True,
        )
    )
    p.stays.append(
        pathway_pb2.StayPeriod(
            stay_id=STAY, hospital_her_id=HOSPITAL, ward="Medisinsk sengepost 3", admitted_at=at(3)
        )
    )
    p.messages.extend(
        [
            pathway_pb2.MessageStatus(
                event_id=f"{REFERRAL}:1",
                name="Henvisning",
                to=common_pb2.Organisation(
                    her_id=HOSPITAL, kind=common_pb2.ORGANISATION_KIND_HOSPITAL
                ),
                sent_at=at(30),
                receipt=common_pb2.APP_REC_STATUS_OK_ERROR_IN_PART,
            ),
            pathway_pb2.MessageStatus(
                event_id=f"{STAY}:2",
                name="Melding om innlagt pasient",
                to=common_pb2.Organisation(
                    her_id=MUNICIPALITY, kind=common_pb2.ORGANISATION_KIND_MUNICIPALITY
                ),
                sent_at=at(2.9),
            ),
        ]
    )
    p.tasks.extend(
        [
            pathway_pb2.OpenTask(
                task_id=f"{REFERRAL}:REFERRAL_ASSESSMENT",
                kind=pathway_pb2.TASK_KIND_REFERRAL_ASSESSMENT,
                description="Henvisningen må vurderes",
                waiting_on=common_pb2.Organisation(
                    her_id=HOSPITAL, kind=common_pb2.ORGANISATION_KIND_HOSPITAL
                ),
                since=at(29),
                due=at(15),
                breached=True,
                aggregate_id=REFERRAL,
            ),
            pathway_pb2.OpenTask(
                task_id=f"{STAY}:MESSAGE_RECEIPT",
                kind=pathway_pb2.TASK_KIND_MESSAGE_RECEIPT,
                description="Melding om innlagt pasient venter på kvittering",
                waiting_on=common_pb2.Organisation(
                    her_id=MUNICIPALITY, kind=common_pb2.ORGANISATION_KIND_MUNICIPALITY
                ),
                since=at(2.9),
                due=at(1.9),
                breached=True,
                aggregate_id=STAY,
            ),
        ]
    )
    medications = p.medications
    medications.list_id = LIST
    medications.patient.CopyFrom(p.patient)
    medications.entries.extend(
        [
            medications_pb2.MedicationEntry(
                entry_id=METFORMIN,
                medication=medications_pb2.Medication(atc_code="A10BA02", name="Metformin"),
                dose="500 mg x 2",
                reason="Diabetes type 2",
                state=medications_pb2.MEDICATION_STATE_ACTIVE,
                source=GP_ACTOR.organisation,
                prescribed_by=GP_ACTOR,
                prescribed_at=at(20),
                last_changed_at=at(20),
                last_changed_by=GP_ACTOR,
            ),
            medications_pb2.MedicationEntry(
                entry_id=RAMIPRIL,
                medication=medications_pb2.Medication(atc_code="C09AA05", name="Ramipril"),
                dose="2.5 mg x 1",
                state=medications_pb2.MEDICATION_STATE_PAUSED,
                source=GP_ACTOR.organisation,
                prescribed_by=GP_ACTOR,
                prescribed_at=at(25),
                last_changed_at=at(2),
                last_changed_by=HOSPITAL_ACTOR,
                state_reason="Lavt blodtrykk",
            ),
        ]
    )
    medications.last_reconciliation.reconciled_at.CopyFrom(at(1))
    medications.last_reconciliation.reconciled_by.CopyFrom(GP_ACTOR)
    p.organisations.extend(
        [
            registry_pb2.OrganisationEntry(
                her_id=MUNICIPALITY,
                kind=common_pb2.ORGANISATION_KIND_MUNICIPALITY,
                name="Fjordvik kommune",
                orgnr="974760673",
            ),
            registry_pb2.OrganisationEntry(
                her_id=HOSPITAL, kind=common_pb2.ORGANISATION_KIND_HOSPITAL, name="Sykehus A"
            ),
        ]
    )
    return p


def resources(bundle: Bundle) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for entry in bundle.entry or []:
        found.setdefault(entry.resource.get_resource_type(), []).append(entry.resource)
    return found


def test_a_rich_pathway_gives_every_resource_type_and_reads_back() -> None:
    pathway = rich_pathway()
    text = fhir.bundle_json(pathway)
    bundle = Bundle.model_validate_json(text)  # parses and validates every resource again
    assert bundle.type == "collection"
    found = resources(bundle)
    counts = Counter({kind: len(items) for kind, items in found.items()})
    assert counts == {
        "Patient": 1,
        "EpisodeOfCare": 1,
        "ServiceRequest": 1,
        "Encounter": 1,
        "Communication": 2,
        "Task": 2,
        "MedicationStatement": 2,
        "Provenance": 5,
        "Organization": 3,  # the GP office, the hospital, the municipality
        "Practitioner": 2,  # the fastlege and the hospital doctor
    }
    # every reference inside the Bundle resolves to one of its entries
    urls = {e.fullUrl for e in bundle.entry or []}
    referenced = {r for r in _references(bundle.model_dump()) if r.startswith("urn:uuid:")}
    assert referenced <= urls
    # the same pathway gives the same Bundle
    assert fhir.bundle_json(pathway) == text


def _references(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return found + [r for v in value.values() for r in _references(v)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    return []


@pytest.mark.parametrize(
    ("patient", "system", "kind"),
    [
        (make_fnr(12, 3, 42, 480), FNR_SYSTEM, "Fødselsnummer"),
        (make_fnr(52, 3, 42, 480), DNR_SYSTEM, "D-nummer"),  # day + 40
        (make_hnr(12, 3, 42, 480), HNR_SYSTEM, "H-nummer"),  # month + 40
    ],
)
def test_the_patient_carries_the_identifier_system_of_its_kind(
    patient: str, system: str, kind: str
) -> None:
    identifier = common_pb2.PatientIdentifier(system=system, value=patient)
    (resource,) = resources(fhir.bundle(rich_pathway(identifier)))["Patient"]
    (ident,) = resource.identifier
    assert (ident.system, ident.value, ident.use, ident.type.text) == (
        system,
        patient,
        "official",
        kind,
    )
    assert system.startswith("urn:oid:2.16.578.1.12.4.1.4.")


def test_organisations_and_people_carry_her_id_orgnr_and_hpr() -> None:
    found = resources(fhir.bundle(rich_pathway()))
    organisations = {
        next(i.value for i in o.identifier if i.system == HER_SYSTEM): o
        for o in found["Organization"]
    }
    municipality = organisations[MUNICIPALITY]
    assert municipality.name == "Fjordvik kommune"
    assert {(i.system, i.value) for i in municipality.identifier} == {
        (HER_SYSTEM, MUNICIPALITY),
        (ORGNR_SYSTEM, "974760673"),
    }
    assert HER_SYSTEM == "urn:oid:2.16.578.1.12.4.1.2"
    assert ORGNR_SYSTEM == "urn:oid:2.16.578.1.12.4.1.4.101"
    assert {p.identifier[0].value for p in found["Practitioner"]} == {GP_HPR, DOCTOR_HPR}
    assert {p.identifier[0].system for p in found["Practitioner"]} == {HPR_SYSTEM}
    (patient,) = found["Patient"]
    assert [g.identifier.value for g in patient.generalPractitioner] == [GP, GP_HPR]


def test_a_patient_who_died_is_deceased_at_the_registers_moment_of_death() -> None:
    pathway = rich_pathway()
    pathway.died_at.FromDatetime(datetime(2026, 3, 5, 13, 0, tzinfo=UTC))
    (patient,) = resources(fhir.bundle(pathway))["Patient"]
    assert patient.deceasedDateTime == datetime(2026, 3, 5, 13, 0, tzinfo=UTC)
    (alive,) = resources(fhir.bundle(rich_pathway()))["Patient"]
    assert alive.deceasedDateTime is None


def test_the_pathway_is_an_episode_managed_by_the_municipality() -> None:
    (episode,) = resources(fhir.bundle(rich_pathway()))["EpisodeOfCare"]
    assert episode.status == "active"
    assert episode.managingOrganization.identifier.value == MUNICIPALITY
    assert episode.period.start == AS_OF - timedelta(days=30)
    assert [r.reference for r in episode.referralRequest] == [f"urn:uuid:{REFERRAL}"]


def test_the_referral_is_a_service_request_from_the_gp_to_the_hospital() -> None:
    (request,) = resources(fhir.bundle(rich_pathway()))["ServiceRequest"]
    assert (request.id, request.status, request.intent, request.priority) == (
        REFERRAL,
        "active",
        "order",
        "urgent",
    )
    assert request.requester.identifier.value == GP
    assert [p.identifier.value for p in request.performer] == [HOSPITAL]
    assert request.reasonCode[0].text == "Pakkeforløp for tykk- og endetarmskreft"


def test_the_stay_is_an_inpatient_encounter_still_in_progress() -> None:
    (encounter,) = resources(fhir.bundle(rich_pathway()))["Encounter"]
    assert (encounter.id, encounter.status) == (STAY, "in-progress")
    assert (encounter.class_fhir.system, encounter.class_fhir.code) == (fhir.ACT_CODE, "IMP")
    assert encounter.period.start == AS_OF - timedelta(days=3) and encounter.period.end is None
    assert encounter.serviceProvider.identifier.value == HOSPITAL
    assert encounter.location[0].location.display == "Medisinsk sengepost 3"


def test_each_message_is_a_communication_with_the_status_of_its_receipt() -> None:
    found = resources(fhir.bundle(rich_pathway()))
    by_topic = {c.topic.text: c for c in found["Communication"]}
    referral, notice = by_topic["Henvisning"], by_topic["Melding om innlagt pasient"]
    assert (referral.status, referral.statusReason.text) == (
        "completed",
        "Applikasjonskvittering: OK, feil i delmelding",
    )
    assert referral.sender.identifier.value == GP
    assert referral.basedOn[0].reference == f"urn:uuid:{REFERRAL}"
    assert (notice.status, notice.statusReason.text) == (
        "in-progress",
        "Venter på applikasjonskvittering",
    )
    assert notice.recipient[0].identifier.value == MUNICIPALITY
    assert notice.encounter.reference == f"urn:uuid:{STAY}"


def test_each_open_task_is_a_task_owned_by_whom_it_waits_on_due_at_its_deadline() -> None:
    found = resources(fhir.bundle(rich_pathway()))
    by_code = {t.code.coding[0].code: t for t in found["Task"]}
    assessment = by_code["REFERRAL_ASSESSMENT"]
    assert assessment.restriction.period.end == AS_OF - timedelta(days=15)
    assert assessment.owner.identifier.value == HOSPITAL
    assert assessment.focus.reference == f"urn:uuid:{REFERRAL}"
    assert assessment.businessStatus.text == "Fristen er passert"
    assert (assessment.status, assessment.intent) == ("requested", "plan")
    assert by_code["MESSAGE_RECEIPT"].focus.reference == f"urn:uuid:{STAY}"


def test_each_medication_is_a_statement_coded_with_atc() -> None:
    found = resources(fhir.bundle(rich_pathway()))
    by_id = {m.id: m for m in found["MedicationStatement"]}
    metformin, ramipril = by_id[METFORMIN], by_id[RAMIPRIL]
    (coding,) = metformin.medicationCodeableConcept.coding
    assert (coding.system, coding.code, coding.display) == (
        "http://www.whocc.no/atc",
        "A10BA02",
        "Metformin",
    )
    assert (metformin.status, metformin.dosage[0].text) == ("active", "500 mg x 2")
    assert (ramipril.status, ramipril.statusReason[0].text) == ("on-hold", "Lavt blodtrykk")


def test_provenance_says_who_did_what_to_which_resource() -> None:
    found = resources(fhir.bundle(rich_pathway()))
    by_activity = {p.activity.coding[0].code: p for p in found["Provenance"]}
    assert len(by_activity) == 5
    sent = by_activity["ReferralSent"]
    assert {t.reference for t in sent.target} == {
        f"urn:uuid:{REFERRAL}",
        f"urn:uuid:{fhir._id('Communication', f'{REFERRAL}:1')}",
    }
    (agent,) = sent.agent
    assert (agent.who.identifier.system, agent.who.identifier.value) == (HPR_SYSTEM, GP_HPR)
    assert (agent.onBehalfOf.identifier.system, agent.onBehalfOf.identifier.value) == (
        HER_SYSTEM,
        GP,
    )
    received = by_activity["ReferralReceived"]  # the hospital's system, no person
    assert received.agent[0].who.identifier.value == HOSPITAL
    assert received.agent[0].onBehalfOf is None
    prescribed = by_activity["MedicationPrescribed"]
    assert [t.reference for t in prescribed.target] == [f"urn:uuid:{METFORMIN}"]
    assert prescribed.recorded == AS_OF - timedelta(days=20)


def test_a_pathway_with_nothing_open_is_a_finished_episode() -> None:
    pathway = rich_pathway()
    del pathway.tasks[:]
    pathway.summary.referrals[0].open = False
    pathway.stays[0].closed_at.CopyFrom(at(1))
    (episode,) = resources(fhir.bundle(pathway))["EpisodeOfCare"]
    assert episode.status == "finished"
    assert episode.period.end == AS_OF - timedelta(days=2.9)


def test_a_resource_that_fails_validation_names_the_element_never_the_value() -> None:
    pathway = rich_pathway()
    pathway.medications.entries[0].medication.atc_code = " A10 BA02"  # not a FHIR code
    with pytest.raises(fhir.InvalidExport) as failed:
        fhir.bundle(pathway)
    assert str(failed.value) == (
        "MedicationStatement: medicationCodeableConcept.coding.0.code: string_pattern_mismatch"
    )


def test_an_event_without_a_named_actor_is_attributed_to_the_recording_service() -> None:
    pathway = rich_pathway()
    pathway.timeline.append(
        pathway_pb2.TimelineEntry(
            event_id="deadline:1",
            event_type="DeadlineBreached",
            source="pathway",
            occurred_at=at(0.5),
            recorded_at=at(0.5),
            aggregate_id="deadline",
        )
    )
    found = resources(fhir.bundle(pathway))
    (breached,) = [
        p for p in found["Provenance"] if p.activity.coding[0].code == "DeadlineBreached"
    ]
    assert breached.agent[0].who.display == "carepath pathway"
    assert [t.reference for t in breached.target] == [f"urn:uuid:{found['EpisodeOfCare'][0].id}"]
    assert breached.activity.text == "DeadlineBreached"
