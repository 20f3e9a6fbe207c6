"""The patient's pathway as a FHIR R4B Bundle: a pure mapping of the `Pathway` message that
GetPathway answers, so an export shows exactly what GetPathway shows the same caller and
nothing more (no read of its own, no fold, no SQL, no gRPC).

Every resource is built and validated with `fhir.resources` (its R4B models,
`fhir.resources.R4B`): unknown elements, a missing required element or a malformed date fail
the export instead of reaching another system. The code lists are not checked by the library,
so the codes emitted here come from fixed tables below.

The Bundle is of type `collection`, not `document`: a document is an attested, immutable
clinical record that starts with a Composition (who attests it, the sections) and is signed as a
whole; this export is a snapshot of carepath's coordination data at `as_of` for another system to
take in, with no author to attest it. A collection says just that (bdl: no Composition, no
request/response parts).

Identifier systems (HL7 Norway's no-basis profiles for R4, repository HL7Norway/basisprofiler-r4
at commit ae75ff9, read 2026-11-30):
  fødselsnummer     urn:oid:2.16.578.1.12.4.1.4.1    NamingSystem/no-basis-fodselsnummer, the
                                                     FNR slice of no-basis-Patient
  D-nummer          urn:oid:2.16.578.1.12.4.1.4.2    NamingSystem/no-basis-dnummer, DNR slice
  felles hjelpenr.  urn:oid:2.16.578.1.12.4.1.4.3    NamingSystem/no-basis-felleshjelpenummer,
                                                     FHN slice. carepath also files local
                                                     H-numbers here (shared/ids.py HNR_SYSTEM);
                                                     no-basis defines no national system for them
  HPR-nummer        urn:oid:2.16.578.1.12.4.1.4.4    NamingSystem/no-basis-helsepersonellnummer,
                                                     the HPR slice of no-basis-Practitioner
  HER-id            urn:oid:2.16.578.1.12.4.1.2      the HER slice of kommunikasjonspart-
                                                     Organization (fixedUri) and the examples'
                                                     generalPractitioner. (A draft NamingSystem
                                                     no-basis-herid in older commits proposed
                                                     http://nhn.no/fhir/NamingSystem/her-id; it is
                                                     not in the current tree.)
  organisasjonsnr.  urn:oid:2.16.578.1.12.4.1.4.101  the ENH slice of no-basis-Organization
  ATC               http://www.whocc.no/atc          HL7 Terminology CodeSystem v3-WC (WHO ATC)
carepath's own codes (task kinds, event types) use CAREPATH_CODES; carepath's ids (UUIDs) are
identifiers of system urn:ietf:rfc:3986 (FHIR's way to carry a URI as an identifier).

R4B against R4 (which no-basis profiles, fhirVersion 4.0.1): the elements of every resource
used here (Patient, Organization, Practitioner, EpisodeOfCare, ServiceRequest, Encounter,
Communication, Task, MedicationStatement, Provenance, Bundle) are the same in both, compared
element by element against fhir.resources 6.0.0 (R4 4.0.1); R4B's changes are elsewhere
(topic-based subscriptions, the medicinal-product definition resources). See docs/fhir.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, TypeVar

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.episodeofcare import EpisodeOfCare
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import ValidationError

from carepath.v1 import common_pb2, medications_pb2, pathway_pb2, referrals_pb2, registry_pb2
from shared.ids import (
    HER_SYSTEM,
    HPR_SYSTEM,
    ORGNR_SYSTEM,
    NationalIdKind,
    parse_patient_identifier,
)

FHIR_VERSION = "4.3.0"
ATC_SYSTEM = "http://www.whocc.no/atc"
URI_SYSTEM = "urn:ietf:rfc:3986"
CAREPATH_CODES = "https://carepath.no/fhir/CodeSystem"
#: The namespace of the resource ids derived from carepath's own (uuid5): the same pathway
#: gives the same ids in every export. They are derived from the patient's identifier, so they
#: are no pseudonyms: treat them as the personal data they stand for.
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://carepath.no/fhir")

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"

_KIND_TEXT = {
    NationalIdKind.FODSELSNUMMER: "Fødselsnummer",
    NationalIdKind.D_NUMBER: "D-nummer",
    NationalIdKind.H_NUMBER: "H-nummer",
    NationalIdKind.FH_NUMBER: "Felles hjelpenummer",
}
_ORG_KIND_TEXT = {
    common_pb2.ORGANISATION_KIND_MUNICIPALITY: "Kommune",
    common_pb2.ORGANISATION_KIND_GP: "Fastlegekontor",
    common_pb2.ORGANISATION_KIND_HOSPITAL: "Sykehus",
    common_pb2.ORGANISATION_KIND_REGISTRY: "Registerforvalter",
}
#: ServiceRequest.status (request-status) of each referral state.
_REFERRAL_STATUS = {
    referrals_pb2.REFERRAL_STATE_SENT: "active",
    referrals_pb2.REFERRAL_STATE_RECEIVED: "active",
    referrals_pb2.REFERRAL_STATE_FORWARDED: "active",
    referrals_pb2.REFERRAL_STATE_ACCEPTED: "active",
    referrals_pb2.REFERRAL_STATE_COMPLETED: "completed",
    referrals_pb2.REFERRAL_STATE_REJECTED: "revoked",
    referrals_pb2.REFERRAL_STATE_RECEIPT_REJECTED: "revoked",
    referrals_pb2.REFERRAL_STATE_CANCELLED: "revoked",
}
_PRIORITY = {
    referrals_pb2.REFERRAL_PRIORITY_ROUTINE: "routine",
    referrals_pb2.REFERRAL_PRIORITY_URGENT: "urgent",
}
_CANCER_TEXT = {
    referrals_pb2.CANCER_PATHWAY_BREAST: "Pakkeforløp for brystkreft",
    referrals_pb2.CANCER_PATHWAY_COLORECTAL: "Pakkeforløp for tykk- og endetarmskreft",
    referrals_pb2.CANCER_PATHWAY_LYMPHOMA: "Pakkeforløp for lymfom",
}
#: Communication.status (event-status) and statusReason of each application receipt (AppRec).
_RECEIPT = {
    common_pb2.APP_REC_STATUS_UNSPECIFIED: ("in-progress", "Venter på applikasjonskvittering"),
    common_pb2.APP_REC_STATUS_OK: ("completed", "Applikasjonskvittering: OK"),
    common_pb2.APP_REC_STATUS_OK_ERROR_IN_PART: (
        "completed",
        "Applikasjonskvittering: OK, feil i delmelding",
    ),
    common_pb2.APP_REC_STATUS_REJECTED: ("not-done", "Applikasjonskvittering: avvist"),
}
#: MedicationStatement.status (medication-statement-status) of each entry state.
_MEDICATION_STATUS = {
    medications_pb2.MEDICATION_STATE_ACTIVE: "active",
    medications_pb2.MEDICATION_STATE_PAUSED: "on-hold",
    medications_pb2.MEDICATION_STATE_DISCONTINUED: "stopped",
}


class InvalidExport(Exception):
    """A resource failed FHIR validation: a fault of carepath's mapping (→ INTERNAL). The
    message names the resource type, the element and the kind of error, never the value (the
    library's own message quotes the input, which is personal data)."""


M = TypeVar("M", bound=Resource)


def _valid(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['type']}"
            for error in exc.errors()
        )
        raise InvalidExport(f"{model.__name__}: {where}") from None


def _instant(ts: Timestamp) -> str:
    return ts.ToDatetime(tzinfo=UTC).isoformat()


def _id(*parts: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, "|".join(parts)))


def _url(resource_id: str) -> str:
    return f"urn:uuid:{resource_id}"


def _uuid_identifier(value: str) -> dict[str, str]:
    return {"system": URI_SYSTEM, "value": f"urn:uuid:{value}"}


@dataclass
class _Bundle:
    """The resources as they are built, and the lookups the references need."""

    pathway: pathway_pb2.Pathway
    resources: list[Resource] = field(default_factory=list)
    organisations: dict[str, str] = field(default_factory=dict)  # HER-id -> resource id
    practitioners: dict[str, str] = field(default_factory=dict)  # HPR -> resource id
    names: dict[str, registry_pb2.OrganisationEntry] = field(default_factory=dict)

    def add(self, resource: Resource) -> str:
        self.resources.append(resource)
        return _url(str(resource.id))

    def organisation(self, her_id: str) -> dict[str, Any]:
        """A reference to the organisation (its Organization added once)."""
        if her_id not in self.organisations:
            self.organisations[her_id] = _id("Organization", her_id)
            entry = self.names.get(her_id)
            resource: dict[str, Any] = {
                "id": self.organisations[her_id],
                "identifier": [{"system": HER_SYSTEM, "value": her_id}],
            }
            if entry is not None:
                if entry.orgnr:
                    resource["identifier"].append({"system": ORGNR_SYSTEM, "value": entry.orgnr})
                if entry.name:
                    resource["name"] = entry.name
                if entry.kind in _ORG_KIND_TEXT:
                    resource["type"] = [{"text": _ORG_KIND_TEXT[entry.kind]}]
                if entry.parent_her_id:
                    resource["partOf"] = self.organisation(entry.parent_her_id)
            self.add(_valid(Organization, resource))
        reference: dict[str, Any] = {
            "reference": _url(self.organisations[her_id]),
            "identifier": {"system": HER_SYSTEM, "value": her_id},
        }
        entry = self.names.get(her_id)
        if entry is not None and entry.name:
            reference["display"] = entry.name
        return reference

    def practitioner(self, hpr: str) -> dict[str, Any]:
        """A reference to the health professional (a Practitioner with the HPR-number only)."""
        if hpr not in self.practitioners:
            self.practitioners[hpr] = _id("Practitioner", hpr)
            self.add(
                _valid(
                    Practitioner,
                    {
                        "id": self.practitioners[hpr],
                        "identifier": [{"system": HPR_SYSTEM, "value": hpr}],
                    },
                )
            )
        return {
            "reference": _url(self.practitioners[hpr]),
            "identifier": {"system": HPR_SYSTEM, "value": hpr},
        }

    def agent(self, actor: common_pb2.Actor) -> dict[str, Any]:
        """Provenance.agent of an actor: the person on behalf of the organisation, or the
        organisation itself when no person is named."""
        author = {"coding": [{"system": PARTICIPANT_TYPE, "code": "author"}]}
        organisation = self.organisation(actor.organisation.her_id)
        if actor.person.hpr_number:
            return {
                "type": author,
                "who": self.practitioner(actor.person.hpr_number),
                "onBehalfOf": organisation,
            }
        return {"type": author, "who": organisation}


def _patient(b: _Bundle) -> str:
    """The Patient with its national identifier in the system of its kind."""
    given = b.pathway.patient
    national = parse_patient_identifier(given.system, given.value)
    resource: dict[str, Any] = {
        "id": _id("Patient", given.system, given.value),
        "identifier": [
            {
                "use": "official",
                "type": {"text": _KIND_TEXT[national.kind]},
                "system": national.system,
                "value": given.value,
            }
        ],
    }
    if b.pathway.HasField("died_at"):  # the registers' death (RegistryService.RecordDeath)
        resource["deceasedDateTime"] = _instant(b.pathway.died_at)
    relations = b.pathway.relations
    if relations.fastlege_her_id:
        resource["generalPractitioner"] = [b.organisation(relations.fastlege_her_id)]
        if relations.fastlege_hpr_number:
            resource["generalPractitioner"].append(b.practitioner(relations.fastlege_hpr_number))
    return b.add(_valid(Patient, resource))


def _episode(b: _Bundle, patient: str) -> str:
    """The pathway as one EpisodeOfCare, managed by the patient's municipality when known;
    active while anything is open (a referral, a task, a stay)."""
    p = b.pathway
    is_open = (
        bool(p.tasks)
        or any(r.open for r in p.summary.referrals)
        or any(not s.HasField("closed_at") for s in p.stays)
    )
    resource: dict[str, Any] = {
        "id": _id("EpisodeOfCare", p.patient.system, p.patient.value),
        "status": "active" if is_open else "finished",
        "type": [{"text": "Pasientforløp på tvers av kommune, fastlege og sykehus"}],
        "patient": {"reference": patient},
    }
    if p.timeline:
        period = {"start": _instant(p.timeline[0].occurred_at)}
        if not is_open:
            period["end"] = _instant(p.timeline[-1].occurred_at)
        resource["period"] = period
    municipality = p.municipality_her_id or p.relations.residence_municipality_her_id
    if municipality:
        resource["managingOrganization"] = b.organisation(municipality)
    if p.summary.referrals:
        resource["referralRequest"] = [
            {"reference": _url(r.referral_id)} for r in p.summary.referrals
        ]
    return b.add(_valid(EpisodeOfCare, resource))


def _referrals(b: _Bundle, patient: str) -> dict[str, str]:
    refs: dict[str, str] = {}
    for r in b.pathway.summary.referrals:
        resource: dict[str, Any] = {
            "id": r.referral_id,
            "identifier": [_uuid_identifier(r.referral_id)],
            "status": _REFERRAL_STATUS.get(r.state, "unknown"),
            "intent": "order",
            "code": {"text": "Henvisning"},
            "subject": {"reference": patient},
            "authoredOn": _instant(r.sent_at),
        }
        if r.priority in _PRIORITY:
            resource["priority"] = _PRIORITY[r.priority]
        if r.cancer_pathway in _CANCER_TEXT:
            resource["reasonCode"] = [{"text": _CANCER_TEXT[r.cancer_pathway]}]
        if r.sender_her_id:
            resource["requester"] = b.organisation(r.sender_her_id)
        if r.receiver_her_id:
            resource["performer"] = [b.organisation(r.receiver_her_id)]
        refs[r.referral_id] = b.add(_valid(ServiceRequest, resource))
    return refs


def _stays(b: _Bundle, patient: str, episode: str) -> dict[str, str]:
    refs: dict[str, str] = {}
    for s in b.pathway.stays:
        closed = s.HasField("closed_at")
        period = {"start": _instant(s.admitted_at)}
        if closed:
            period["end"] = _instant(s.closed_at)
        resource: dict[str, Any] = {
            "id": s.stay_id,
            "identifier": [_uuid_identifier(s.stay_id)],
            "status": "finished" if closed else "in-progress",
            "class": {"system": ACT_CODE, "code": "IMP", "display": "inpatient encounter"},
            "subject": {"reference": patient},
            "episodeOfCare": [{"reference": episode}],
            "period": period,
        }
        if s.hospital_her_id:
            resource["serviceProvider"] = b.organisation(s.hospital_her_id)
        if s.ward:
            resource["location"] = [{"location": {"display": s.ward}}]
        refs[s.stay_id] = b.add(_valid(Encounter, resource))
    return refs


def _messages(
    b: _Bundle, patient: str, referrals: dict[str, str], stays: dict[str, str]
) -> dict[str, str]:
    """Each message as a Communication: status from the receiver's AppRec, the sender from the
    timeline event that sent it, tied to its referral or stay."""
    events = {e.event_id: e for e in b.pathway.timeline}
    refs: dict[str, str] = {}
    for m in b.pathway.messages:
        status, reason = _RECEIPT.get(m.receipt, _RECEIPT[common_pb2.APP_REC_STATUS_UNSPECIFIED])
        resource: dict[str, Any] = {
            "id": _id("Communication", m.event_id),
            "status": status,
            "statusReason": {"text": reason},
            "topic": {"text": m.name},
            "subject": {"reference": patient},
            "sent": _instant(m.sent_at),
        }
        if m.to.her_id:
            resource["recipient"] = [b.organisation(m.to.her_id)]
        event = events.get(m.event_id)
        if event is not None:
            if event.actor.organisation.her_id:
                resource["sender"] = b.organisation(event.actor.organisation.her_id)
            if event.aggregate_id in referrals:
                resource["basedOn"] = [{"reference": referrals[event.aggregate_id]}]
            if event.aggregate_id in stays:
                resource["encounter"] = {"reference": stays[event.aggregate_id]}
        refs[m.event_id] = b.add(_valid(Communication, resource))
    return refs


def _tasks(b: _Bundle, patient: str, focus: dict[str, str]) -> None:
    """Each open task as a Task owned by the organisation it waits on, due at
    restriction.period.end (R4/R4B's place for when fulfilment is sought)."""
    for t in b.pathway.tasks:
        kind = pathway_pb2.TaskKind.Name(t.kind).removeprefix("TASK_KIND_")
        resource: dict[str, Any] = {
            "id": _id("Task", t.task_id),
            "status": "requested",
            "intent": "plan",
            "businessStatus": {"text": "Fristen er passert" if t.breached else "Venter"},
            "code": {
                "coding": [{"system": f"{CAREPATH_CODES}/task-kind", "code": kind}],
                "text": t.description,
            },
            "description": t.description,
            "for": {"reference": patient},
            "authoredOn": _instant(t.since),
            "restriction": {"period": {"end": _instant(t.due)}},
        }
        if t.waiting_on.her_id:
            resource["owner"] = b.organisation(t.waiting_on.her_id)
        if t.aggregate_id in focus:
            resource["focus"] = {"reference": focus[t.aggregate_id]}
        b.add(_valid(Task, resource))


def _medications(b: _Bundle, patient: str, episode: str) -> dict[str, str]:
    refs: dict[str, str] = {}
    for e in b.pathway.medications.entries:
        stopped = e.state == medications_pb2.MEDICATION_STATE_DISCONTINUED
        period = {"start": _instant(e.prescribed_at)}
        if stopped:
            period["end"] = _instant(e.last_changed_at)
        resource: dict[str, Any] = {
            "id": e.entry_id,
            "identifier": [_uuid_identifier(e.entry_id)],
            "status": _MEDICATION_STATUS.get(e.state, "unknown"),
            "medicationCodeableConcept": {"text": e.medication.name},
            "subject": {"reference": patient},
            "context": {"reference": episode},
            "effectivePeriod": period,
            "dateAsserted": _instant(e.last_changed_at),
        }
        if e.medication.atc_code:
            resource["medicationCodeableConcept"]["coding"] = [
                {"system": ATC_SYSTEM, "code": e.medication.atc_code, "display": e.medication.name}
            ]
        if e.source.her_id:
            resource["informationSource"] = b.organisation(e.source.her_id)
        if e.dose:
            resource["dosage"] = [{"text": e.dose}]
        if e.reason:
            resource["reasonCode"] = [{"text": e.reason}]
        if e.state_reason:
            resource["statusReason"] = [{"text": e.state_reason}]
        refs[e.entry_id] = b.add(_valid(MedicationStatement, resource))
    return refs


def _medication_targets(
    b: _Bundle, event: pathway_pb2.TimelineEntry, refs: dict[str, str]
) -> list[str]:
    """The list entries an event of the medication list changed: the timeline names the list,
    not the entry, so the entries prescribed or last changed at the event's moment (all of them
    for the latest reconciliation)."""
    medications = b.pathway.medications
    if event.aggregate_id != medications.list_id:
        return []
    if medications.HasField("last_reconciliation") and (
        medications.last_reconciliation.reconciled_at == event.occurred_at
    ):
        return list(refs.values())
    return [
        refs[e.entry_id]
        for e in medications.entries
        if event.occurred_at in (e.prescribed_at, e.last_changed_at)
    ]


def _provenance(
    b: _Bundle,
    episode: str,
    referrals: dict[str, str],
    stays: dict[str, str],
    messages: dict[str, str],
    medications: dict[str, str],
) -> None:
    """Who did what: one Provenance per timeline event, targeting what the event is about (the
    message, the referral, the stay, the medication entries; else the pathway itself)."""
    for event in b.pathway.timeline:
        targets: list[str] = []
        if event.event_id in messages:
            targets.append(messages[event.event_id])
        for refs in (referrals, stays):
            if event.aggregate_id in refs:
                targets.append(refs[event.aggregate_id])
        targets += _medication_targets(b, event, medications)
        resource: dict[str, Any] = {
            "id": _id("Provenance", event.event_id),
            "target": [{"reference": t} for t in _unique(targets or [episode])],
            "occurredDateTime": _instant(event.occurred_at),
            "recorded": _instant(event.recorded_at),
            "activity": {
                "coding": [{"system": f"{CAREPATH_CODES}/event-type", "code": event.event_type}],
                "text": event.summary or event.event_type,
            },
            "agent": [
                b.agent(event.actor)
                if event.actor.organisation.her_id
                else {"who": {"display": f"carepath {event.source}"}}
            ],
        }
        b.add(_valid(Provenance, resource))


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def bundle(pathway: pathway_pb2.Pathway) -> Bundle:
    """The Bundle of one pathway (as GetPathway answered it), validated."""
    b = _Bundle(pathway, names={o.her_id: o for o in pathway.organisations})
    patient = _patient(b)
    episode = _episode(b, patient)
    referrals = _referrals(b, patient)
    stays = _stays(b, patient, episode)
    messages = _messages(b, patient, referrals, stays)
    _tasks(b, patient, {**referrals, **stays})
    medications = _medications(b, patient, episode)
    _provenance(b, episode, referrals, stays, messages, medications)
    as_of = _instant(pathway.as_of)
    return _valid(
        Bundle,
        {
            "id": _id("Bundle", pathway.patient.system, pathway.patient.value, as_of),
            "meta": {"lastUpdated": as_of},
            "type": "collection",
            "timestamp": as_of,
            "entry": [{"fullUrl": _url(str(r.id)), "resource": r} for r in b.resources],
        },
    )


def bundle_json(pathway: pathway_pb2.Pathway) -> str:
    """The Bundle as FHIR JSON (application/fhir+json; fhirVersion=4.3)."""
    return str(bundle(pathway).json())
