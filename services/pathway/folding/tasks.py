"""Open tasks: what each organisation owes the pathway, with its due time, from the folded
referrals, stays and discharges (pure, no I/O)."""

from __future__ import annotations

from datetime import date, datetime

from services.pathway.folding.model import (
    CorrespondenceView,
    DischargeView,
    MunicipalServiceView,
    PloMessage,
    ReferralView,
    StayView,
    Task,
)
from services.pathway.folding.registers import RegisterFacts
from services.pathway.folding.summaries import (
    CANCER_MILESTONE_NAMES,
    CANCER_PATHWAY_NAMES,
    SERVICE_NAMES,
    TREATMENT_NAMES,
)
from shared import rules
from shared.times import OSLO, day_after, utc_iso


def receipt_tasks(messages: dict[str, PloMessage], aggregate_id: str) -> list[Task]:
    """Every message still without its application receipt waits on its receiver."""
    return [
        Task(
            task_id=f"{message_id}:MESSAGE_RECEIPT",
            kind="MESSAGE_RECEIPT",
            description=f"{m.name} venter på applikasjonskvittering",
            waiting_on_her_id=m.to_her_id,
            waiting_on_kind=m.to_kind,
            since=m.sent_at,
            due=utc_iso(rules.receipt_due(datetime.fromisoformat(m.sent_at))),
            aggregate_id=aggregate_id,
        )
        for message_id, m in sorted(messages.items())
        if not m.answered
    ]


def stay_tasks(stay: StayView) -> list[Task]:
    tasks = receipt_tasks(stay.messages, stay.stay_id)
    if stay.existing_service_user and not stay.health_information_sent and not stay.closed_at:
        admitted = datetime.fromisoformat(stay.admitted_at)
        tasks.append(
            Task(
                task_id=f"{stay.stay_id}:HEALTH_INFORMATION",
                kind="HEALTH_INFORMATION",
                description="Helseopplysninger til kommunen innen 24 timer etter innleggelse",
                waiting_on_her_id=stay.hospital_her_id,
                waiting_on_kind="HOSPITAL",
                since=stay.admitted_at,
                due=utc_iso(rules.health_information_due(admitted)),
                aggregate_id=stay.stay_id,
            )
        )
    return tasks


def discharge_tasks(d: DischargeView) -> list[Task]:
    tasks = receipt_tasks(d.messages, d.discharge_id)
    ready = d.ready
    if ready is not None and ready.answered_at is None:
        tasks.append(
            Task(
                task_id=f"{d.discharge_id}:READINESS_ANSWER:{ready.ready_at}",
                kind="READINESS_ANSWER",
                description="Kommunen må svare om og når den kan ta imot utskrivningsklar pasient",
                waiting_on_her_id=d.municipality_her_id,
                waiting_on_kind="MUNICIPALITY",
                since=ready.ready_at,
                due=utc_iso(rules.readiness_answer_due(datetime.fromisoformat(ready.ready_at))),
                aggregate_id=d.discharge_id,
            )
        )
    return tasks


def correspondence_tasks(c: CorrespondenceView) -> list[Task]:
    """Each message without its receipt, and a Forespørsel without its answer: waiting on its
    receiver until the deadline of rules.toml [correspondence_answer]."""
    tasks = receipt_tasks(c.messages, c.correspondence_id)
    if c.awaits_answer:
        asked = datetime.fromisoformat(c.sent_at)
        who = "Fastlegen" if c.to_kind == "GP" else "Kommunen"
        tasks.append(
            Task(
                task_id=f"{c.correspondence_id}:CORRESPONDENCE_ANSWER",
                kind="CORRESPONDENCE_ANSWER",
                description=f"{who} må svare på forespørselen",
                waiting_on_her_id=c.to_her_id,
                waiting_on_kind=c.to_kind,
                since=c.sent_at,
                due=utc_iso(rules.correspondence_answer_due(asked)),
                aggregate_id=c.correspondence_id,
            )
        )
    return tasks


def referral_tasks(r: ReferralView) -> list[Task]:
    tasks = assessment_tasks(r)
    if not r.cancer_pathway_running:
        return tasks
    assert r.cancer_pathway is not None
    name = CANCER_PATHWAY_NAMES[r.cancer_pathway]
    for m in r.cancer_milestones():
        if m.reached_at is None and m.segment_start and m.due:
            what = CANCER_MILESTONE_NAMES[m.milestone]
            cure = f" ({TREATMENT_NAMES[m.treatment]})" if m.treatment else ""
            tasks.append(
                Task(
                    task_id=f"{r.referral_id}:CANCER_{m.milestone}",
                    kind=f"CANCER_{m.milestone}",
                    description=f"Pakkeforløp {name}: {what}{cure} innen {m.standard_days} dager",
                    waiting_on_her_id=r.receiver_her_id,
                    waiting_on_kind="HOSPITAL",
                    since=m.segment_start,
                    due=m.due,
                    aggregate_id=r.referral_id,
                )
            )
    return tasks


def assessment_tasks(r: ReferralView) -> list[Task]:
    since = datetime.fromisoformat(r.waiting_since)

    def task(kind: str, description: str, due: datetime, on: str = "HOSPITAL") -> Task:
        return Task(
            task_id=f"{r.referral_id}:{kind}",
            kind=kind,
            description=description,
            waiting_on_her_id=r.sender_her_id if on == "GP" else r.receiver_her_id,
            waiting_on_kind=on,
            since=r.waiting_since,
            due=utc_iso(due),
            aggregate_id=r.referral_id,
        )

    if r.state in ("SENT", "FORWARDED"):
        return [
            task(
                "REFERRAL_RECEIPT",
                "Henvisningen venter på applikasjonskvittering fra sykehuset",
                rules.receipt_due(since),
            )
        ]
    if r.state == "RECEIPT_REJECTED":
        return [
            task(
                "REFERRAL_RESEND",
                "Henvisningen ble avvist ved mottak: fastlegen må rette og sende den på nytt",
                rules.referral_resend_due(since),
                on="GP",
            )
        ]
    if r.state != "RECEIVED":
        return []
    serious = r.serious_illness_suspected
    days = rules.referral_assessment_days(serious)
    sooner = " (mistanke om alvorlig sykdom)" if serious else ""
    return [
        task(
            "REFERRAL_ASSESSMENT",
            f"Henvisningen må vurderes og pasienten informeres innen {days} virkedager{sooner}",
            rules.referral_assessment_due(since, serious),
        )
    ]


def service_tasks(s: MunicipalServiceView) -> list[Task]:
    """A decided service waits on its municipality to start it by the end of the day it was
    decided to start on (the decision's own date: no rule of rules.toml)."""
    if s.state != "DECIDED":
        return []
    return [
        Task(
            task_id=f"{s.service_id}:SERVICE_START",
            kind="SERVICE_START",
            description=f"Vedtatt {SERVICE_NAMES[s.kind]} skal starte {s.starts_on}",
            waiting_on_her_id=s.municipality_her_id,
            waiting_on_kind="MUNICIPALITY",
            since=s.decided_at,
            due=day_after(date.fromisoformat(s.starts_on)),
            aggregate_id=s.service_id,
        )
    ]


def reconciliation_tasks(
    discharges: list[DischargeView], register: RegisterFacts, last_reconciled_at: str | None
) -> list[Task]:
    """After each discharge the patient's fastlege (from the registers, on the discharge day)
    reconciles the medication list; a reconciliation recorded at or after the discharge closes
    it. Without a known fastlege there is no one to wait on, so no task."""
    tasks = []
    for d in discharges:
        if d.discharged_at is None:
            continue
        if last_reconciled_at is not None and last_reconciled_at >= d.discharged_at:
            continue
        discharged = datetime.fromisoformat(d.discharged_at)
        gp = register.fastlege_on(discharged.astimezone(OSLO).date())
        if gp is None:
            continue
        tasks.append(
            Task(
                task_id=f"{d.discharge_id}:MEDICATION_RECONCILIATION",
                kind="MEDICATION_RECONCILIATION",
                description="Fastlegen må samstemme legemiddellisten etter utskrivning",
                waiting_on_her_id=gp,
                waiting_on_kind="GP",
                since=d.discharged_at,
                due=utc_iso(rules.medication_reconciliation_due(discharged)),
                aggregate_id=d.discharge_id,
            )
        )
    return tasks
