"""The municipality's side of a hospital stay, on the real services: a patient discharged home
whose home nursing starts the next day, and a patient who dies while ready for discharge. The
patient lives in MUNICIPALITY (registered as the register adapter does), which decides the
services, answers the readiness and reads the pathway and its worklist."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from uuid import UUID

import grpc
import pytest

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    discharges_pb2,
    discharges_pb2_grpc,
    municipal_pb2,
    municipal_pb2_grpc,
    pathway_pb2,
    pathway_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from services.discharges.application import DischargesApplication
from shared.broker import Tenant
from shared.ids import FNR_SYSTEM
from shared.times import OSLO
from tests.conftest import HOSPITAL, MUNICIPALITY, OTHER_MUNICIPALITY
from tests.processes import nameko
from tests.support import (
    NOW,
    REGISTER_ADAPTER,
    Harness,
    auth,
    drain_queue,
    events_in,
    make_fnr,
    meta,
    projector_queue,
    running_system,
    wait_for,
)

NURSING_HOME = "88001"


@pytest.fixture
def system(backend: dict[str, str], broker: Tenant, amqp_uri: str) -> Iterator[Harness]:
    queue = projector_queue("e2e")
    with (
        running_system(backend, broker, queue) as harness,
        nameko("services.discharges.reactions", broker, backend),
    ):
        yield harness
    drain_queue(amqp_uri, queue)


class Ward:
    """The stubs of one story, each call as its organisation."""

    def __init__(self, system: Harness, patient: common_pb2.PatientIdentifier) -> None:
        self.system, self.patient = system, patient
        self.admissions = admissions_pb2_grpc.AdmissionServiceStub(
            system.channel(system.servers["admissions"])
        )
        self.discharges = discharges_pb2_grpc.DischargeServiceStub(
            system.channel(system.servers["discharges"])
        )
        self.municipal = municipal_pb2_grpc.MunicipalServiceStub(
            system.channel(system.servers["municipal"])
        )
        self.registry = registry_pb2_grpc.RegistryServiceStub(
            system.channel(system.servers["registry"])
        )
        self.pathway = pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server))
        system.register({"system": patient.system, "value": patient.value}, MUNICIPALITY.her_id)

    def admit(self, days: float) -> str:
        stay = self.admissions.AdmitPatient(
            admissions_pb2.AdmitPatientRequest(
                metadata=meta(days=days),
                patient=self.patient,
                ward="Medisinsk sengepost",
                admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
                municipality_her_id=MUNICIPALITY.her_id,
            ),
            metadata=auth(HOSPITAL),
        )
        known = self.system.apps["discharges"]
        assert isinstance(known, DischargesApplication)
        wait_for(lambda: known.stays.get(UUID(stay.stay_id)), what="discharges to know the stay")
        return str(stay.stay_id)

    def ready(self, stay_id: str, days: float) -> None:
        self.discharges.DeclareReadyForDischarge(
            discharges_pb2.DeclareReadyForDischargeRequest(
                metadata=meta(days=days), stay_id=stay_id
            ),
            metadata=auth(HOSPITAL),
        )

    def read(self, until: Callable[[pathway_pb2.Pathway], bool]) -> pathway_pb2.Pathway:
        def shown() -> pathway_pb2.Pathway | None:
            try:
                reply = self.pathway.GetPathway(
                    pathway_pb2.GetPathwayRequest(
                        patient=self.patient, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
                    ),
                    metadata=auth(MUNICIPALITY),
                )
            except grpc.RpcError:
                return None
            return reply if until(reply) else None

        return wait_for(shown, what="the pathway to show it")

    def worklist(self, kind: int) -> list[str]:
        reply = self.pathway.ListPathways(
            pathway_pb2.ListPathwaysRequest(
                municipality_her_id=MUNICIPALITY.her_id,
                purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
                service_kind=kind,  # type: ignore[arg-type]
                page_size=200,
            ),
            metadata=auth(MUNICIPALITY),
        )
        return [i.patient.value for i in reply.items]


def test_discharged_home_with_home_nursing_started_the_next_day(system: Harness) -> None:
    patient = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(2, 5, 41, 300))
    ward = Ward(system, patient)
    stay_id = ward.admit(days=-5)
    ward.discharges.DischargePatient(
        discharges_pb2.DischargePatientRequest(
            metadata=meta(days=-2),
            stay_id=stay_id,
            destination=discharges_pb2.DISCHARGE_DESTINATION_HOME,
        ),
        metadata=auth(HOSPITAL),
    )
    home = ward.read(lambda p: p.location.kind == pathway_pb2.LOCATION_KIND_HOME)
    assert not home.municipal_services

    tomorrow = (NOW + timedelta(days=-1)).astimezone(OSLO).date()
    decide = municipal_pb2.DecideServiceRequest(
        metadata=meta("vedtak", days=-2, hours=1),
        patient=patient,
        kind=municipal_pb2.MUNICIPAL_SERVICE_KIND_HOME_NURSING,
        starts_on=common_pb2.Date(year=tomorrow.year, month=tomorrow.month, day=tomorrow.day),
    )
    # only the municipality the registers say the patient lives in decides
    with pytest.raises(grpc.RpcError) as refused:
        ward.municipal.DecideService(decide, metadata=auth(OTHER_MUNICIPALITY))
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    # a place in an institution names its institution; a refused command records nothing
    place = municipal_pb2.DecideServiceRequest()
    place.CopyFrom(decide)
    place.metadata.command_id = "vedtak-without-place"
    place.kind = municipal_pb2.MUNICIPAL_SERVICE_KIND_SHORT_TERM_STAY
    with pytest.raises(grpc.RpcError) as invalid:
        ward.municipal.DecideService(place, metadata=auth(MUNICIPALITY))
    assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "institution_her_id" in (invalid.value.details() or "")
    assert events_in(system.apps["municipal"]) == 0
    service = ward.municipal.DecideService(decide, metadata=auth(MUNICIPALITY))
    assert service.state == municipal_pb2.MUNICIPAL_SERVICE_STATE_DECIDED
    start = municipal_pb2.StartServiceRequest(
        metadata=meta("first-visit", days=-1), service_id=service.service_id
    )
    started = ward.municipal.StartService(start, metadata=auth(MUNICIPALITY))
    assert started.state == municipal_pb2.MUNICIPAL_SERVICE_STATE_STARTED
    stored = events_in(system.apps["municipal"])
    with pytest.raises(grpc.RpcError) as twice:
        ward.municipal.StartService(
            municipal_pb2.StartServiceRequest(metadata=meta(), service_id=service.service_id),
            metadata=auth(MUNICIPALITY),
        )
    assert twice.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert events_in(system.apps["municipal"]) == stored  # a refused command changes nothing

    reply = ward.read(lambda p: p.location.kind == pathway_pb2.LOCATION_KIND_HOME_WITH_SERVICES)
    assert reply.location.since == started.started_at
    [shown] = reply.municipal_services
    assert (shown.kind, shown.state, shown.municipality_her_id) == (
        municipal_pb2.MUNICIPAL_SERVICE_KIND_HOME_NURSING,
        municipal_pb2.MUNICIPAL_SERVICE_STATE_STARTED,
        MUNICIPALITY.her_id,
    )
    assert not [t for t in reply.tasks if t.kind == pathway_pb2.TASK_KIND_SERVICE_START]
    # the worklist filters on the service the patient receives now
    assert patient.value in ward.worklist(municipal_pb2.MUNICIPAL_SERVICE_KIND_HOME_NURSING)
    assert patient.value not in ward.worklist(municipal_pb2.MUNICIPAL_SERVICE_KIND_LONG_TERM_STAY)


def test_a_patient_who_dies_while_ready_for_discharge(system: Harness) -> None:
    patient = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(9, 11, 33, 400))
    ward = Ward(system, patient)
    stay_id = ward.admit(days=-8)
    ward.ready(stay_id, days=-4)
    place = ward.municipal.DecideService(
        municipal_pb2.DecideServiceRequest(
            metadata=meta(days=-3),
            patient=patient,
            kind=municipal_pb2.MUNICIPAL_SERVICE_KIND_LONG_TERM_STAY,
            starts_on=common_pb2.Date(year=2099, month=1, day=1),
            institution_her_id=NURSING_HOME,
        ),
        metadata=auth(MUNICIPALITY),
    )
    waiting = ward.read(lambda p: len(p.municipal_services) == 1 and len(p.payments) == 1)
    assert {t.kind for t in waiting.tasks} >= {
        pathway_pb2.TASK_KIND_READINESS_ANSWER,
        pathway_pb2.TASK_KIND_SERVICE_START,
    }
    assert waiting.payments[0].ongoing

    death = registry_pb2.RecordDeathRequest(metadata=meta("death", days=-1), patient=patient)
    recorded = ward.registry.RecordDeath(death, metadata=auth(HOSPITAL))
    assert recorded.died_at == death.metadata.occurred_at
    assert recorded.death_recorded_by.organisation.her_id == HOSPITAL.her_id
    # the same command again answers with the first result; another recording is refused
    assert ward.registry.RecordDeath(death, metadata=auth(HOSPITAL)) == recorded
    with pytest.raises(grpc.RpcError) as again:
        ward.registry.RecordDeath(
            registry_pb2.RecordDeathRequest(metadata=meta(), patient=patient),
            metadata=auth(REGISTER_ADAPTER),
        )
    assert again.value.code() is grpc.StatusCode.ALREADY_EXISTS

    dead = ward.read(lambda p: p.HasField("died_at"))
    assert dead.died_at == death.metadata.occurred_at
    assert list(dead.tasks) == []  # every open task closed
    assert (dead.location.kind, dead.location.since) == (
        pathway_pb2.LOCATION_KIND_DECEASED,
        dead.died_at,
    )
    [stay] = dead.stays
    assert stay.closed_at == dead.died_at
    [payment] = dead.payments
    died_on = (NOW + timedelta(days=-1)).astimezone(OSLO).date()
    assert not payment.ongoing
    assert (payment.until.year, payment.until.month, payment.until.day) == (
        died_on.year,
        died_on.month,
        died_on.day,
    )  # the period stops at the day of death: no payment from it on
    [ended] = dead.municipal_services
    assert (ended.service_id, ended.state, ended.end_reason) == (
        place.service_id,
        municipal_pb2.MUNICIPAL_SERVICE_STATE_ENDED,
        municipal_pb2.SERVICE_END_REASON_PATIENT_DIED,
    )
    assert dead.timeline[-1].event_type == "PatientDied"
    listed = ward.pathway.ListPathways(
        pathway_pb2.ListPathwaysRequest(
            municipality_her_id=MUNICIPALITY.her_id,
            purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
            location_kind=pathway_pb2.LOCATION_KIND_DECEASED,
            page_size=200,
        ),
        metadata=auth(MUNICIPALITY),
    )
    [item] = [i for i in listed.items if i.patient.value == patient.value]
    assert item.died_at == dead.died_at and item.open_tasks == 0
    # no care is decided or started for her any more: the death is the registers'
    for refused in (
        lambda: ward.municipal.DecideService(
            municipal_pb2.DecideServiceRequest(
                metadata=meta(),
                patient=patient,
                kind=municipal_pb2.MUNICIPAL_SERVICE_KIND_HOME_NURSING,
                starts_on=common_pb2.Date(year=2099, month=1, day=2),
            ),
            metadata=auth(MUNICIPALITY),
        ),
        lambda: ward.municipal.StartService(
            municipal_pb2.StartServiceRequest(metadata=meta(), service_id=place.service_id),
            metadata=auth(MUNICIPALITY),
        ),
    ):
        with pytest.raises(grpc.RpcError) as error:
            refused()
        assert error.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "dead by the registers" in (error.value.details() or "")
