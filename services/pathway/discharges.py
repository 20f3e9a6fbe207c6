"""The discharge part of the fold: readiness periods (utskrivningsklar), the municipality's
answer, payment periods, the destination and the discharge messages (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from services.pathway.messages import PloMessage
from shared.events import Envelope
from shared.events import discharges as dc
from shared.times import OSLO, utc_iso


@dataclass
class ReadyPeriod:
    ready_at: str
    answered_at: str | None = None
    can_receive: bool | None = None
    receive_on: str | None = None  # ISO date
    ended_at: str | None = None  # withdrawn (avmelding) or discharged


@dataclass
class DischargeView:
    discharge_id: str
    stay_id: str
    hospital_her_id: str
    municipality_her_id: str
    periods: list[ReadyPeriod] = field(default_factory=list)
    discharged_at: str | None = None
    destination: str | None = None
    destination_her_id: str | None = None
    messages: dict[str, PloMessage] = field(default_factory=dict)

    @property
    def ready(self) -> ReadyPeriod | None:
        """The readiness period still running, if any."""
        if self.periods and self.periods[-1].ended_at is None:
            return self.periods[-1]
        return None


def fold_discharge(history: list[Envelope]) -> DischargeView | None:
    view: DischargeView | None = None
    for e in sorted(history, key=lambda e: e.aggregate_version):
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
            case dc.ReadinessWithdrawn() if view.ready:
                view.ready.ended_at = when
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
            case dc.EpicrisisSent(message_id=message_id, to_her_id=to_her_id):
                kind = "MUNICIPALITY" if to_her_id == view.municipality_her_id else "GP"
                view.messages[message_id] = PloMessage(
                    "Epikrise", to_her_id, kind, when, e.event_id
                )
            case dc.MessageReceiptRecorded(message_id=message_id, status=status) if (
                message_id in view.messages
            ):
                view.messages[message_id].status = status
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


def payment_periods(view: DischargeView, today: date) -> list[PaymentPeriod]:
    """From the ready day until the first of: the day the municipality said it can receive
    the patient, the withdrawal (avmelding), the discharge — or today while still waiting."""
    periods = []
    for p in view.periods:
        ready_on = _day(p.ready_at)
        ends = [_day(p.ended_at)] if p.ended_at else []
        if p.can_receive and p.receive_on:
            ends.append(max(ready_on, date.fromisoformat(p.receive_on)))
        ongoing = not ends
        until = min(ends) if ends else max(today, ready_on)
        periods.append(
            PaymentPeriod(view.stay_id, view.municipality_her_id, ready_on, until, ongoing)
        )
    return periods
