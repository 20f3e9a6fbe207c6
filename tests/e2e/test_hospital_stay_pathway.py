"""A hospital stay as the municipal coordinator sees it in the pathway: where the patient is,
which PLO messages wait for a receipt, and the 24-hour Helseopplysninger deadline.

Both patients live in MUNICIPALITY (registered as the register adapter does): that, not the
municipality an admission names, puts them on its coordinator's list."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any

import grpc
import pytest

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    pathway_pb2,
    pathway_pb2_grpc,
)
from shared.access.model import Basis
from shared.ids import FNR_SYSTEM
from tests.conftest import HOSPITAL, MUNICIPALITY, OTHER_MUNICIPALITY
from tests.support import (
    NOW,
    Harness,
    auth,
    make_fnr,
    meta,
    wait_for,
)

PATIENT = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(12, 3, 42, 480))
OTHER = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(7, 7, 37, 120))


@pytest.fixture(autouse=True)
def registered(system: Harness) -> None:
    for patient in (PATIENT, OTHER):
        system.register(
            {"system": patient.system, "value": patient.value}, municipality=MUNICIPALITY.her_id
        )


@pytest.fixture
def admissions(system: Harness) -> admissions_pb2_grpc.AdmissionServiceStub:
    return admissions_pb2_grpc.AdmissionServiceStub(system.channel(system.servers["admissions"]))


@pytest.fixture
def pathway(system: Harness) -> pathway_pb2_grpc.PathwayServiceStub:
    return pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server))


def admit(
    admissions: admissions_pb2_grpc.AdmissionServiceStub,
    patient: common_pb2.PatientIdentifier,
    command_id: str,
    hours_ago: float,
) -> admissions_pb2.Stay:
    return admissions.AdmitPatient(
        admissions_pb2.AdmitPatientRequest(
            metadata=meta(command_id, hours=-hours_ago),
            patient=patient,
            ward="Medisinsk sengepost 3",
            admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
            municipality_her_id=MUNICIPALITY.her_id,
            municipal_services_likely=True,
            existing_service_user=True,
        ),
        metadata=auth(HOSPITAL),
    )


def pathway_with(
    pathway: pathway_pb2_grpc.PathwayServiceStub,
    events: int,
    patient: common_pb2.PatientIdentifier = PATIENT,
) -> Callable[[], pathway_pb2.Pathway | None]:
    def check() -> pathway_pb2.Pathway | None:
        try:
            reply = pathway.GetPathway(
                pathway_pb2.GetPathwayRequest(
                    patient=patient, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
                ),
                metadata=auth(MUNICIPALITY),
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return reply if len(reply.timeline) >= events else None

    return check


def test_an_admission_report_before_the_notice_and_the_24_hour_deadline(
    admissions: admissions_pb2_grpc.AdmissionServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    stay = admit(admissions, PATIENT, "admit", hours_ago=3)
    report = admissions.RecordAdmissionReport(
        admissions_pb2.RecordAdmissionReportRequest(
            metadata=meta("report", hours=-2), stay_id=stay.stay_id
        ),
        metadata=auth(MUNICIPALITY),
    )
    admissions.SendAdmissionNotice(
        admissions_pb2.SendAdmissionNoticeRequest(
            metadata=meta("notice", hours=-1), stay_id=stay.stay_id
        ),
        metadata=auth(HOSPITAL),
    )
    reply = wait_for(pathway_with(pathway, 3), what="the stay in the pathway")
    assert reply.location.kind == pathway_pb2.LOCATION_KIND_HOSPITAL
    assert (reply.location.her_id, reply.location.ward) == (
        HOSPITAL.her_id,
        "Medisinsk sengepost 3",
    )
    assert [e.event_type for e in reply.timeline] == [
        "PatientAdmitted",
        "AdmissionReportReceived",
        "AdmissionNoticeSent",
    ]
    waiting = {(t.kind, t.waiting_on.her_id) for t in reply.tasks}
    assert waiting == {
        (pathway_pb2.TASK_KIND_HEALTH_INFORMATION, HOSPITAL.her_id),
        (pathway_pb2.TASK_KIND_MESSAGE_RECEIPT, HOSPITAL.her_id),  # the report
        (pathway_pb2.TASK_KIND_MESSAGE_RECEIPT, MUNICIPALITY.her_id),  # the notice
    }
    health = next(t for t in reply.tasks if t.kind == pathway_pb2.TASK_KIND_HEALTH_INFORMATION)
    assert health.due.ToDatetime(tzinfo=UTC) == NOW + timedelta(hours=21)

    report_id = report.messages[0].message_id
    admissions.RecordMessageReceipt(
        admissions_pb2.RecordMessageReceiptRequest(
            metadata=meta("ack-report", hours=-0.5),
            stay_id=stay.stay_id,
            message_id=report_id,
            receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK),
        ),
        metadata=auth(HOSPITAL),
    )
    admissions.SendHealthInformation(
        admissions_pb2.SendHealthInformationRequest(
            metadata=meta("hi", hours=-0.2), stay_id=stay.stay_id
        ),
        metadata=auth(HOSPITAL),
    )
    reply = wait_for(pathway_with(pathway, 5), what="the receipt and health information")
    assert {(t.kind, t.waiting_on.her_id) for t in reply.tasks} == {
        (pathway_pb2.TASK_KIND_MESSAGE_RECEIPT, MUNICIPALITY.her_id),  # notice
        (pathway_pb2.TASK_KIND_MESSAGE_RECEIPT, MUNICIPALITY.her_id),  # health information
    }
    assert len(reply.tasks) == 2


def test_the_coordinators_list_puts_the_overdue_patient_first(
    admissions: admissions_pb2_grpc.AdmissionServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    admit(admissions, PATIENT, "recent", hours_ago=1)
    admit(admissions, OTHER, "long-ago", hours_ago=48)  # no health information for two days
    wait_for(pathway_with(pathway, 1), what="the first patient")
    wait_for(pathway_with(pathway, 1, OTHER), what="the second patient")
    reply = pathway.ListPathways(
        pathway_pb2.ListPathwaysRequest(
            municipality_her_id=MUNICIPALITY.her_id,
            only_with_open_tasks=True,
            purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
        ),
        metadata=auth(MUNICIPALITY),
    )
    assert [i.patient.value for i in reply.items] == [OTHER.value, PATIENT.value]
    assert reply.items[0].overdue_tasks == 1 and reply.items[1].overdue_tasks == 0
    first_page = pathway.ListPathways(
        pathway_pb2.ListPathwaysRequest(
            municipality_her_id=MUNICIPALITY.her_id,
            page_size=1,
            purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
        ),
        metadata=auth(MUNICIPALITY),
    )
    second_page = pathway.ListPathways(
        pathway_pb2.ListPathwaysRequest(
            municipality_her_id=MUNICIPALITY.her_id,
            page_size=1,
            page_token=first_page.next_page_token,
            purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
        ),
        metadata=auth(MUNICIPALITY),
    )
    assert [i.patient.value for i in (*first_page.items, *second_page.items)] == [
        OTHER.value,
        PATIENT.value,
    ]
    assert second_page.next_page_token == ""


def test_the_coordinator_narrows_the_list_to_what_needs_attention(
    admissions: admissions_pb2_grpc.AdmissionServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    admit(admissions, PATIENT, "recent", hours_ago=1)
    admit(admissions, OTHER, "long-ago", hours_ago=48)
    wait_for(pathway_with(pathway, 1), what="the first patient")
    wait_for(pathway_with(pathway, 1, OTHER), what="the second patient")

    def listed(**narrowing: Any) -> list[str]:
        reply = pathway.ListPathways(
            pathway_pb2.ListPathwaysRequest(
                municipality_her_id=MUNICIPALITY.her_id,
                purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
                **narrowing,
            ),
            metadata=auth(MUNICIPALITY),
        )
        return [i.patient.value for i in reply.items]

    assert listed(only_overdue=True) == [OTHER.value]
    assert listed(waiting_on=common_pb2.ORGANISATION_KIND_HOSPITAL) == [OTHER.value, PATIENT.value]
    assert listed(waiting_on=common_pb2.ORGANISATION_KIND_GP) == []
    assert listed(location_kind=pathway_pb2.LOCATION_KIND_HOSPITAL) == [OTHER.value, PATIENT.value]
    assert listed(location_kind=pathway_pb2.LOCATION_KIND_HOME) == []
    assert listed(only_ready_for_discharge=True) == []
    assert listed(patient_query=PATIENT.value[:6]) == [PATIENT.value]
    item = pathway.ListPathways(
        pathway_pb2.ListPathwaysRequest(
            municipality_her_id=MUNICIPALITY.her_id,
            purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
            only_overdue=True,
        ),
        metadata=auth(MUNICIPALITY),
    ).items[0]
    assert item.location.ward == "Medisinsk sengepost 3"
    health = next(t for t in item.tasks if t.kind == pathway_pb2.TASK_KIND_HEALTH_INFORMATION)
    assert health.breached and health.waiting_on.her_id == HOSPITAL.her_id
    with pytest.raises(grpc.RpcError) as refused:
        listed(patient_query="12a")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "patient_query" in str(refused.value.details())


def test_a_patient_living_elsewhere_joins_the_list_only_when_a_message_is_sent_to_us(
    system: Harness,
    admissions: admissions_pb2_grpc.AdmissionServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    """The admission names MUNICIPALITY, but the patient lives in OTHER_MUNICIPALITY: naming a
    municipality gives it nothing. The hospital's admission notice to it does, while the stay
    is open."""
    visitor = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(9, 9, 49, 250))
    key = {"system": visitor.system, "value": visitor.value}
    system.register(key, municipality=OTHER_MUNICIPALITY.her_id)
    stay = admit(admissions, visitor, "visitor", hours_ago=2)
    admit(admissions, PATIENT, "resident", hours_ago=1)
    wait_for(pathway_with(pathway, 1), what="the resident's stay")

    def listed() -> list[str]:
        reply = pathway.ListPathways(
            pathway_pb2.ListPathwaysRequest(
                municipality_her_id=MUNICIPALITY.her_id,
                purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
            ),
            metadata=auth(MUNICIPALITY),
        )
        return [i.patient.value for i in reply.items]

    def read() -> pathway_pb2.Pathway:
        return pathway.GetPathway(
            pathway_pb2.GetPathwayRequest(
                patient=visitor, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
            ),
            metadata=auth(MUNICIPALITY),
        )

    assert visitor.value not in listed()
    with pytest.raises(grpc.RpcError) as refused:
        read()
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

    admissions.SendAdmissionNotice(
        admissions_pb2.SendAdmissionNoticeRequest(
            metadata=meta("notice", hours=-1), stay_id=stay.stay_id
        ),
        metadata=auth(HOSPITAL),
    )
    system.wait_for_relationship(key, MUNICIPALITY.her_id, Basis.MESSAGE_RECEIVER)
    assert visitor.value in listed()
    assert read().access_basis == common_pb2.ACCESS_BASIS_MESSAGE_RECEIVER
