"""The admissions service's domain events → the public contract (shared.events.admissions), one
mapping per published event type. The relay publishes only what is mapped here; the stay index
(StayIndexCreated, StayIndexed) is bookkeeping and stays inside."""

from __future__ import annotations

from typing import Any

from shared.events import admissions as ev
from shared.events.base import AppRecError, Contract


def patient_admitted(e: Any) -> ev.PatientAdmitted:
    return ev.PatientAdmitted(
        hospital_her_id=e.hospital_her_id,
        ward=e.ward,
        admission_type=e.admission_type,
        referral_id=e.referral_id,
        home_municipality_her_id=e.home_municipality_her_id,
        municipal_services_likely=e.municipal_services_likely,
        existing_service_user=e.existing_service_user,
    )


def admission_notice_sent(e: Any) -> ev.AdmissionNoticeSent:
    return ev.AdmissionNoticeSent(message_id=e.message_id, to_her_id=e.to_her_id)


def admission_report_received(e: Any) -> ev.AdmissionReportReceived:
    return ev.AdmissionReportReceived(
        message_id=e.message_id, from_her_id=e.from_her_id, to_her_id=e.to_her_id
    )


def health_information_sent(e: Any) -> ev.HealthInformationSent:
    return ev.HealthInformationSent(message_id=e.message_id, to_her_id=e.to_her_id, first=e.first)


def message_receipt_recorded(e: Any) -> ev.MessageReceiptRecorded:
    return ev.MessageReceiptRecorded(
        message_id=e.message_id,
        status=e.status,
        errors=[AppRecError(code=x["code"], description=x["description"]) for x in e.errors],
    )


def patient_transferred(e: Any) -> ev.PatientTransferred:
    return ev.PatientTransferred(to_hospital_her_id=e.to_hospital_her_id, to_ward=e.to_ward)


def stay_closed(e: Any) -> ev.StayClosed:
    return ev.StayClosed(reason=e.reason)


CONTRACT: Contract = {
    "PatientAdmitted": patient_admitted,
    "AdmissionNoticeSent": admission_notice_sent,
    "AdmissionReportReceived": admission_report_received,
    "HealthInformationSent": health_information_sent,
    "MessageReceiptRecorded": message_receipt_recorded,
    "PatientTransferred": patient_transferred,
    "StayClosed": stay_closed,
}
