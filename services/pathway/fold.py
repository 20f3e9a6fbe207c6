"""The deterministic fold: one patient's events → timeline, referral states, summary.

Pure functions, no I/O. The same set of events gives the same rows whatever order or how many
times they arrived: the timeline is sorted by (clinical time, source, aggregate, version) and
each referral's state is folded in its own version order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from services.pathway.readmodel import utc_iso
from shared.envelope import Envelope

OPEN_REFERRAL_STATES = frozenset({"SENT", "RECEIVED", "FORWARDED", "ACCEPTED"})

CANCER_PATHWAY_NAMES = {
    "BREAST": "brystkreft",
    "COLORECTAL": "tykk- og endetarmskreft",
    "LYMPHOMA": "lymfom",
}

LEVEL_NAMES = {"MUNICIPALITY": "kommunen", "GP": "fastlegen", "HOSPITAL": "sykehuset"}


def _summary(envelope: Envelope) -> str:
    """A short Norwegian line for people. Never clinical free text (reasons stay in data)."""
    data = envelope.data
    match envelope.event_type:
        case "ReferralSent":
            pathway = CANCER_PATHWAY_NAMES.get(data.get("cancer_pathway") or "", "")
            urgency = "hastehenvisning" if data.get("priority") == "URGENT" else "henvisning"
            suffix = f", pakkeforløp {pathway}" if pathway else ""
            return f"Fastlegen sendte {urgency} til sykehus {data['receiver_her_id']}{suffix}"
        case "ReferralReceiptRecorded":
            status = {
                "OK": "mottatt",
                "OK_ERROR_IN_PART": "mottatt med feil i deler",
                "REJECTED": "avvist ved mottak",
            }[data["status"]]
            return f"Henvisning {status} (applikasjonskvittering {data['status']})"
        case "ReferralAccepted":
            return f"Henvisning vurdert: rett til helsehjelp, planlagt {data['planned_date']}"
        case "ReferralRejected":
            return "Henvisning vurdert: avslått"
        case "ReferralForwarded":
            return f"Henvisning videresendt til sykehus {data['to_her_id']}"
        case "ReferralCompleted":
            return "Henvisning avsluttet: helsehjelpen er gitt"
        case "ReferralCancelled":
            return "Henvisning trukket tilbake av fastlegen"
        case _:
            who = LEVEL_NAMES.get(envelope.actor.get("org_kind", ""), "ukjent")
            return f"{envelope.event_type} ({who})"


def timeline_order(envelope: Envelope) -> tuple[str, str, str, int]:
    return (
        utc_iso(envelope.occurred_at),
        envelope.source,
        envelope.aggregate_id,
        envelope.aggregate_version,
    )


@dataclass
class ReferralView:
    referral_id: str
    state: str
    priority: str
    cancer_pathway: str | None
    sender_her_id: str
    receiver_her_id: str
    sent_at: str
    updated_at: str

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_REFERRAL_STATES


@dataclass
class PatientPathway:
    timeline: list[tuple[Envelope, str]] = field(default_factory=list)  # (event, summary)
    referrals: list[ReferralView] = field(default_factory=list)

    @property
    def open_referrals(self) -> int:
        return sum(1 for r in self.referrals if r.is_open)


def _fold_referral(history: list[Envelope]) -> ReferralView | None:
    view: ReferralView | None = None
    for e in sorted(history, key=lambda e: e.aggregate_version):
        d: dict[str, Any] = e.data
        if e.event_type == "ReferralSent":
            view = ReferralView(
                referral_id=e.aggregate_id,
                state="SENT",
                priority=d["priority"],
                cancer_pathway=d.get("cancer_pathway"),
                sender_her_id=d["sender_her_id"],
                receiver_her_id=d["receiver_her_id"],
                sent_at=utc_iso(e.occurred_at),
                updated_at=utc_iso(e.occurred_at),
            )
            continue
        if view is None:  # later events arrived before ReferralSent: wait for it
            return None
        match e.event_type:
            case "ReferralReceiptRecorded":
                view.state = "RECEIPT_REJECTED" if d["status"] == "REJECTED" else "RECEIVED"
            case "ReferralAccepted":
                view.state = "ACCEPTED"
            case "ReferralRejected":
                view.state = "REJECTED"
            case "ReferralForwarded":
                view.state = "FORWARDED"
                view.receiver_her_id = d["to_her_id"]
            case "ReferralCompleted":
                view.state = "COMPLETED"
            case "ReferralCancelled":
                view.state = "CANCELLED"
        view.updated_at = max(view.updated_at, utc_iso(e.occurred_at))
    return view


def fold(envelopes: Iterable[Envelope]) -> PatientPathway:
    ordered = sorted(envelopes, key=timeline_order)
    result = PatientPathway(timeline=[(e, _summary(e)) for e in ordered])
    by_referral: dict[str, list[Envelope]] = defaultdict(list)
    for e in ordered:
        if e.source == "referrals":
            by_referral[e.aggregate_id].append(e)
    views = [v for v in map(_fold_referral, by_referral.values()) if v is not None]
    result.referrals = sorted(views, key=lambda v: (v.sent_at, v.referral_id), reverse=True)
    return result
