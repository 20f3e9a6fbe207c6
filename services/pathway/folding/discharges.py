"""The discharge part of the fold: readiness periods (utskrivningsklar), the municipality's
answer, payment periods, the destination and the discharge messages (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from services.pathway.folding.model import DischargeView, PloMessage, ReadyPeriod
from shared.events import Envelope
from shared.events import discharges as dc
from shared.times import OSLO, utc_iso


def step_discharge(view: DischargeView | None, e: Envelope) -> DischargeView | None:
    """The discharge after one more of its events (in version order); None while its first
    published event has not arrived (the fold waits for it)."""
    when = utc_iso(e.occurred_at)
    if view is None:
        match e.data:  # the first published event names the stay
            case dc.PatientDeclaredReadyForDischarge() as ready:
                hospital, municipality = ready.hospital_her_id, ready.municipality_her_id
            case dc.PatientDischarged():
                hospital, municipality = e.actor.get("her_id", ""), ""
            case _:
                return None  # the first event has not arrived yet: wait for it
        view = DischargeView(
            discharge_id=e.aggregate_id,
            stay_id=e.data.stay_id,
            hospital_her_id=hospital,
            municipality_her_id=municipality,
        )
    match e.data:
        case dc.PatientDeclaredReadyForDischarge(
            municipality_her_id=municipality, message_id=message_id
        ):
            view.municipality_her_id = municipality
            view.periods.append(ReadyPeriod(ready_at=when))
            view.messages[message_id] = PloMessage(
                "Melding om utskrivningsklar pasient",
                municipality,
                "MUNICIPALITY",
                when,
                e.event_id,
            )
        case dc.MunicipalityAnsweredReadiness() as answer if view.ready:
            period = view.ready
            period.answered_at, period.can_receive = when, answer.can_receive
            period.receive_on = answer.receive_on
        case dc.ReadinessWithdrawn(message_id=message_id) if view.ready:
            view.ready.ended_at = when
            if message_id:  # the Avmelding, to the municipality notified of the readiness
                view.messages[message_id] = PloMessage(
                    "Avmelding av utskrivningsklar pasient",
                    view.municipality_her_id,
                    "MUNICIPALITY",
                    when,
                    e.event_id,
                )
        case dc.PatientDischarged() as discharged:
            if view.ready:
                view.ready.ended_at = when
            view.discharged_at = when
            view.destination = discharged.destination
            view.destination_her_id = discharged.destination_her_id
            if discharged.report_message_id:  # to the nursing home, else the home nursing
                to = discharged.destination_her_id or view.municipality_her_id
                view.messages[discharged.report_message_id] = PloMessage(
                    "Utskrivningsrapport", to, "MUNICIPALITY", when, e.event_id
                )
            if discharged.notice_message_id and view.municipality_her_id:
                view.messages[discharged.notice_message_id] = PloMessage(
                    "Melding om utskrevet pasient",
                    view.municipality_her_id,
                    "MUNICIPALITY",
                    when,
                    e.event_id,
                )
        case dc.EpicrisisSent(message_id=message_id, to_her_id=to_her_id):
            kind = "MUNICIPALITY" if to_her_id == view.municipality_her_id else "GP"
            view.messages[message_id] = PloMessage("Epikrise", to_her_id, kind, when, e.event_id)
        case dc.MessageReceiptRecorded(message_id=message_id, status=status) if (
            message_id in view.messages
        ):
            view.messages[message_id].status = status
    return view


def fold_discharge(history: list[Envelope]) -> DischargeView | None:
    """One discharge from all of its events (any order)."""
    view: DischargeView | None = None
    for e in sorted(history, key=lambda e: e.aggregate_version):
        view = step_discharge(view, e)
        if view is None:
            return None
    return view


def _day(iso: str) -> date:
    return datetime.fromisoformat(iso).astimezone(OSLO).date()


@dataclass(frozen=True)
class PaymentPeriod:
    """Days the municipality pays for one readiness period (see rules.payment_days)."""

    stay_id: str
    municipality_her_id: str
    ready_on: date
    until: date  # first day not paid
    ongoing: bool


@dataclass(frozen=True)
class PaymentSpan:
    """One readiness period as the read model stores it: its first day and, once known, the
    first day not paid (None: still running, so it runs until "today" when it is read)."""

    stay_id: str
    municipality_her_id: str
    ready_on: date
    ends_on: date | None

    def on(self, today: date) -> PaymentPeriod:
        """The period as it stands on `today` (pure arithmetic, no fold)."""
        if self.ends_on is not None:
            return PaymentPeriod(
                self.stay_id, self.municipality_her_id, self.ready_on, self.ends_on, False
            )
        until = max(today, self.ready_on)
        return PaymentPeriod(self.stay_id, self.municipality_her_id, self.ready_on, until, True)


def payment_spans(view: DischargeView) -> list[PaymentSpan]:
    """From the ready day until the first of: the day the municipality said it can receive
    the patient, the withdrawal (avmelding), the discharge — or, while still waiting, open."""
    spans = []
    for p in view.periods:
        ready_on = _day(p.ready_at)
        ends = [_day(p.ended_at)] if p.ended_at else []
        if p.can_receive and p.receive_on:
            ends.append(max(ready_on, date.fromisoformat(p.receive_on)))
        spans.append(
            PaymentSpan(view.stay_id, view.municipality_her_id, ready_on, min(ends, default=None))
        )
    return spans


def payment_periods(view: DischargeView, today: date) -> list[PaymentPeriod]:
    """Every readiness period of the discharge as it stands on `today`."""
    return [span.on(today) for span in payment_spans(view)]
