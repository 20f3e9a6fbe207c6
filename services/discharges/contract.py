"""The discharges service's domain events → the public contract (shared.events.discharges), one
mapping per published event type. The relay publishes only what is mapped here;
DischargeOpened is bookkeeping and stays inside."""

from __future__ import annotations

from typing import Any

from shared.events import discharges as ev
from shared.events.base import AppRecError, Contract


def patient_declared_ready(e: Any) -> ev.PatientDeclaredReadyForDischarge:
    return ev.PatientDeclaredReadyForDischarge(
        stay_id=e.stay_id,
        hospital_her_id=e.hospital_her_id,
        municipality_her_id=e.municipality_her_id,
        message_id=e.message_id,
        **e.content,
    )


def municipality_answered_readiness(e: Any) -> ev.MunicipalityAnsweredReadiness:
    return ev.MunicipalityAnsweredReadiness(can_receive=e.can_receive, receive_on=e.receive_on)


def readiness_withdrawn(e: Any) -> ev.ReadinessWithdrawn:
    return ev.ReadinessWithdrawn(reason=e.reason, message_id=getattr(e, "message_id", None))


def patient_discharged(e: Any) -> ev.PatientDischarged:
    return ev.PatientDischarged(
        stay_id=e.stay_id,
        destination=e.destination,
        destination_her_id=e.destination_her_id,
        report_message_id=e.report_message_id,
        notice_message_id=getattr(e, "notice_message_id", None),
    )


def epicrisis_sent(e: Any) -> ev.EpicrisisSent:
    return ev.EpicrisisSent(message_id=e.message_id, to_her_id=e.to_her_id)


def message_receipt_recorded(e: Any) -> ev.MessageReceiptRecorded:
    return ev.MessageReceiptRecorded(
        message_id=e.message_id,
        status=e.status,
        errors=[AppRecError(code=x["code"], description=x["description"]) for x in e.errors],
    )


CONTRACT: Contract = {
    "PatientDeclaredReadyForDischarge": patient_declared_ready,
    "MunicipalityAnsweredReadiness": municipality_answered_readiness,
    "ReadinessWithdrawn": readiness_withdrawn,
    "PatientDischarged": patient_discharged,
    "EpicrisisSent": epicrisis_sent,
    "MessageReceiptRecorded": message_receipt_recorded,
}
