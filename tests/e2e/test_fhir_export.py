"""The pathway exported as FHIR over real gRPC: the demo story (a referral forwarded between two
hospitals, a stay with PLO messages and their receipts, a medication list changed in hospital
and reconciled) and one more referral still waiting for the hospital's receipt, exported by
the municipal coordinator. The Bundle validates with fhir.resources (R4B) and says exactly what
GetPathway says the same coordinator; a caller who may not see the patient is refused as
GetPathway refuses, and a patient carepath has no events for is NOT_FOUND to a caller with
access."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from fhir.resources.R4B.bundle import Bundle
from google.protobuf.timestamp_pb2 import Timestamp

from carepath.v1 import (
    common_pb2,
    pathway_pb2,
    pathway_pb2_grpc,
    referrals_pb2,
    referrals_pb2_grpc,
)
from services.pathway import fhir
from shared.access.enforce import REFUSAL
from shared.actors import Actor
from shared.api import timestamp as ts
from shared.broker import Tenant
from shared.ids import FNR_SYSTEM
from tests.conftest import MUNICIPALITY, OTHER_MUNICIPALITY
from tests.processes import demo_reactions
from tests.support import (
    Harness,
    auth,
    demo_module,
    drain_queue,
    load_demo,
    make_fnr,
    projector_queue,
    running_system,
    wait_for,
)

COORDINATION = common_pb2.ACCESS_PURPOSE_CARE_COORDINATION


def export(
    stub: pathway_pb2_grpc.PathwayServiceStub,
    patient: common_pb2.PatientIdentifier,
    caller: Actor,
) -> pathway_pb2.ExportFhirResponse:
    return stub.ExportFhir(  # type: ignore[no-any-return]
        pathway_pb2.ExportFhirRequest(patient=patient, purpose=COORDINATION),
        metadata=auth(caller),
    )


def get(
    stub: pathway_pb2_grpc.PathwayServiceStub,
    patient: common_pb2.PatientIdentifier,
    caller: Actor,
) -> pathway_pb2.Pathway:
    return stub.GetPathway(  # type: ignore[no-any-return]
        pathway_pb2.GetPathwayRequest(patient=patient, purpose=COORDINATION),
        metadata=auth(caller),
    )


def by_type(bundle: Bundle) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for entry in bundle.entry or []:
        found.setdefault(entry.resource.get_resource_type(), []).append(entry.resource)
    return found


def test_the_demo_pathway_exports_as_a_valid_bundle_saying_what_get_pathway_says(
    backend: dict[str, str], broker: Tenant, amqp_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    demo = demo_module()
    queue = projector_queue("fhir")
    patient = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=demo.PATIENT)
    with running_system(backend, broker, queue) as system, demo_reactions(broker, backend):
        expected = load_demo(system, demo) + 1
        referrals = referrals_pb2_grpc.ReferralServiceStub(system.channel(system.referrals_server))
        referrals.SendReferral(
            referrals_pb2.SendReferralRequest(
                metadata=common_pb2.CommandMetadata(
                    command_id="fhir-export-referral", occurred_at=ts(datetime.now(UTC))
                ),
                patient=patient,
                receiver_her_id=demo.HOSPITAL_A.her_id,
                reason="Kontroll etter operasjon",
                priority=referrals_pb2.REFERRAL_PRIORITY_ROUTINE,
            ),
            metadata=auth(demo.GP),
        )
        stub = pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server))

        def complete() -> pathway_pb2.Pathway | None:
            try:
                reply = get(stub, patient, demo.COORDINATOR)
            except grpc.RpcError:
                return None
            closed = any(e.event_type == "StayClosed" for e in reply.timeline)
            return reply if len(reply.timeline) >= expected and closed and reply.tasks else None

        wait_for(complete, timeout=60, what="the demo story and the new referral in the pathway")
        with caplog.at_level(logging.INFO):
            answer = export(stub, patient, demo.COORDINATOR)
        assert demo.PATIENT not in caplog.text  # neither the number nor the Bundle is logged
        reply = get(stub, patient, demo.COORDINATOR)

        assert answer.fhir_version == "4.3.0"
        bundle = Bundle.model_validate_json(answer.bundle_json)  # parses and validates
        assert bundle.type == "collection"
        # Exactly GetPathway's answer for the coordinator, mapped (at the export's moment).
        reply.as_of.CopyFrom(_timestamp(bundle.timestamp))
        assert answer.bundle_json == fhir.bundle_json(reply)

        found = by_type(bundle)
        (person,) = found["Patient"]
        assert [(i.system, i.value) for i in person.identifier] == [(FNR_SYSTEM, demo.PATIENT)]
        (episode,) = found["EpisodeOfCare"]
        assert episode.status == "active"  # the new referral is open
        assert episode.managingOrganization.identifier.value == demo.COORDINATOR.her_id
        assert {r.id for r in found["ServiceRequest"]} == {
            r.referral_id for r in reply.summary.referrals
        }
        assert len(found["ServiceRequest"]) == 3
        (stay,) = reply.stays
        (encounter,) = found["Encounter"]
        assert (encounter.id, encounter.status) == (stay.stay_id, "finished")
        statuses = {c.topic.text: c.status for c in found["Communication"]}
        assert len(found["Communication"]) == len(reply.messages)
        assert statuses["Melding om innlagt pasient"] == "completed"  # AppRec OK
        assert statuses["Epikrise"] == "in-progress"  # unanswered
        assert {t.restriction.period.end for t in found["Task"]} == {
            t.due.ToDatetime(tzinfo=UTC) for t in reply.tasks
        }
        assert {
            (m.medicationCodeableConcept.coding[0].code, m.dosage[0].text)
            for m in found["MedicationStatement"]
        } == {(e.medication.atc_code, e.dose) for e in reply.medications.entries}
        assert len(found["Provenance"]) == len(reply.timeline)
        assert any(
            a.who.identifier.value == demo.GP.hpr for p in found["Provenance"] for a in p.agent
        )

        (row,) = [
            r
            for r in system.audit_rows({"system": FNR_SYSTEM, "value": demo.PATIENT})
            if r.call == "PathwayService/ExportFhir"
        ]
        assert (row.outcome, row.actor_her_id, row.basis, row.purpose) == (
            "OK",
            demo.COORDINATOR.her_id,
            "RESIDENCE_MUNICIPALITY",
            "CARE_COORDINATION",
        )
    drain_queue(amqp_uri, queue)


def _timestamp(value: datetime | None) -> Timestamp:
    assert value is not None
    return ts(value)


def _refusal(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value.code(), refused.value.details()


def test_an_export_is_refused_and_not_found_exactly_as_get_pathway(system: Harness) -> None:
    """A municipality the patient lives in, before anything happened: NOT_FOUND; another
    municipality: PERMISSION_DENIED with the same words, whether or not the patient is known."""
    known = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(3, 9, 51, 230))
    stranger = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(4, 9, 51, 230))
    registered = {"system": known.system, "value": known.value}
    system.register(registered, municipality=MUNICIPALITY.her_id)
    stub = pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server))
    for patient, caller, code in [
        (known, MUNICIPALITY, grpc.StatusCode.NOT_FOUND),
        (known, OTHER_MUNICIPALITY, grpc.StatusCode.PERMISSION_DENIED),
        (stranger, OTHER_MUNICIPALITY, grpc.StatusCode.PERMISSION_DENIED),
        (stranger, MUNICIPALITY, grpc.StatusCode.PERMISSION_DENIED),
    ]:
        exported = _refusal(lambda p=patient, c=caller: export(stub, p, c))
        read = _refusal(lambda p=patient, c=caller: get(stub, p, c))
        assert exported == read
        assert exported[0] == code
        if code == grpc.StatusCode.PERMISSION_DENIED:
            assert exported[1] == REFUSAL
    without_purpose = _refusal(
        lambda: stub.ExportFhir(
            pathway_pb2.ExportFhirRequest(patient=known), metadata=auth(MUNICIPALITY)
        )
    )
    assert without_purpose[0] == grpc.StatusCode.INVALID_ARGUMENT
    rows = system.audit_rows(registered)
    exports = [(r.outcome, r.actor_her_id) for r in rows if r.call == "PathwayService/ExportFhir"]
    assert sorted(exports) == sorted(
        [("NOT_FOUND", MUNICIPALITY.her_id), ("PERMISSION_DENIED", OTHER_MUNICIPALITY.her_id)]
    )
