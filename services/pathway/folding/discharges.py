"""The discharge part of the fold: readiness periods (utskrivningsklar), the municipality's
answer, payment periods, the destination and the discharge messages (pure, no I/O)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import date, datetime

from services.pathway.folding.model import DischargeView, PloMessage, ReadyPeriod, StayView
from services.pathway.folding.stays import MESSAGE_NAMES
from shared import rules
from shared.events import Envelope
from shared.events import admissions as adm
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
            said = e.data
            missing = [item for item in rules.readiness_notice_content() if not getattr(said, item)]
            view.periods.append(ReadyPeriod(ready_at=when, missing_content=missing))
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
            view.messages[message_id].receipt(status, when)
    return view


def at_death(view: DischargeView, died_at: str) -> DischargeView:
    """The discharge as the patient's death leaves it: a readiness period still running ends
    at the death, as at a discharge (the day of death is the first day not paid)."""
    ready = view.ready
    if ready is None or ready.ready_at > died_at:
        return view
    periods = [*view.periods[:-1], replace(ready, ended_at=died_at)]
    return replace(view, periods=periods)


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


class NotPayable(enum.StrEnum):
    """Why the municipality does not owe a readiness period (proto `NotPayableReason` without
    its prefix), in the order of the regulation's conditions (rules.toml
    [discharge_payment.conditions])."""

    ADMISSION_NOTICE_MISSING = "ADMISSION_NOTICE_MISSING"
    ADMISSION_NOTICE_LATE = "ADMISSION_NOTICE_LATE"
    HEALTH_INFORMATION_MISSING = "HEALTH_INFORMATION_MISSING"
    HEALTH_INFORMATION_LATE = "HEALTH_INFORMATION_LATE"
    READINESS_NOTICE_INCOMPLETE = "READINESS_NOTICE_INCOMPLETE"


#: Each reason in Norwegian, for the people who read the period (coordinators, the invoice).
_LATE = "ble sendt senere enn {hours} timer etter innleggelsen"
NOT_PAYABLE_TEXT = {
    NotPayable.ADMISSION_NOTICE_MISSING: "Melding om innlagt pasient er ikke sendt",
    NotPayable.ADMISSION_NOTICE_LATE: "Melding om innlagt pasient " + _LATE,
    NotPayable.HEALTH_INFORMATION_MISSING: "Helseopplysninger (status, antatt forløp) mangler",
    NotPayable.HEALTH_INFORMATION_LATE: "Helseopplysninger (status, antatt forløp) " + _LATE,
    NotPayable.READINESS_NOTICE_INCOMPLETE: "Meldingen om utskrivningsklar pasient mangler "
    "{missing}",
}


def not_payable_text(reasons: list[NotPayable], missing_content: list[str]) -> str:
    """The reasons a period is not payable, in Norwegian ("" when it is payable)."""
    hours = rules.rules()["discharge_payment"]["conditions"]["admission_notice"]["hours"]
    names = rules.readiness_notice_content()
    missing = ", ".join(names.get(item, item) for item in missing_content)
    texts = [NOT_PAYABLE_TEXT[r].format(hours=hours, missing=missing) for r in reasons]
    return "; ".join(texts) + ("." if texts else "")


@dataclass(frozen=True)
class PaymentPeriod:
    """Days of one readiness period as it stands on a day (see rules.payment_days)."""

    stay_id: str
    municipality_her_id: str
    ready_on: date
    until: date  # first day not paid
    ongoing: bool


@dataclass(frozen=True)
class PaymentSpan:
    """One readiness period as the read model stores it: its first day and, once known, the
    first day not paid (None: still running, so it runs through "today" when it is read), and
    the regulation's conditions it fails (none: payable)."""

    stay_id: str
    municipality_her_id: str
    ready_on: date
    ends_on: date | None
    not_payable: tuple[NotPayable, ...] = ()
    missing_content: tuple[str, ...] = ()

    @property
    def payable(self) -> bool:
        return not self.not_payable

    def on(self, today: date) -> PaymentPeriod:
        """The period as it stands on `today` (pure arithmetic, no fold): a running one counts
        today's døgn (rules.payment_until)."""
        until = rules.payment_until(self.ready_on, self.ends_on, today)
        ongoing = self.ends_on is None
        return PaymentPeriod(self.stay_id, self.municipality_her_id, self.ready_on, until, ongoing)


_NOTICE = MESSAGE_NAMES[adm.AdmissionNoticeSent][0]
_HEALTH_INFORMATION = MESSAGE_NAMES[adm.HealthInformationSent][0]


def _notice_conditions(stay: StayView | None) -> list[NotPayable]:
    """§ 8: a patient the hospital expects to need municipal services is announced to the
    municipality within the hours of the rules, with status and course — in PLO terms the
    admission notice and the first Helseopplysninger. None are asked for when the hospital
    expected no municipal services (and none when the stay is not known yet: the fold waits)."""
    if stay is None or not (stay.municipal_services_likely or stay.existing_service_user):
        return []
    due = rules.admission_notice_due(datetime.fromisoformat(stay.admitted_at))
    failed = []
    for name, missing, late in (
        (_NOTICE, NotPayable.ADMISSION_NOTICE_MISSING, NotPayable.ADMISSION_NOTICE_LATE),
        (
            _HEALTH_INFORMATION,
            NotPayable.HEALTH_INFORMATION_MISSING,
            NotPayable.HEALTH_INFORMATION_LATE,
        ),
    ):
        sent = sorted(m.sent_at for m in stay.messages.values() if m.name == name)
        if not sent:
            failed.append(missing)
        elif datetime.fromisoformat(sent[0]) > due:
            failed.append(late)
    return failed


def payment_spans(view: DischargeView, stay: StayView | None = None) -> list[PaymentSpan]:
    """From the ready day until the first of: the day the municipality said it can receive
    the patient, the withdrawal (avmelding), the discharge — or, while still waiting, open.
    Each with the conditions of the regulation it fails: the stay's admission notice and
    health information (§ 8), the readiness notice's content (§§ 9–10)."""
    notices = _notice_conditions(stay)
    spans = []
    for p in view.periods:
        ready_on = _day(p.ready_at)
        ends = [_day(p.ended_at)] if p.ended_at else []
        if p.can_receive and p.receive_on:
            ends.append(max(ready_on, date.fromisoformat(p.receive_on)))
        failed = list(notices)
        if p.missing_content:
            failed.append(NotPayable.READINESS_NOTICE_INCOMPLETE)
        spans.append(
            PaymentSpan(
                view.stay_id,
                view.municipality_her_id,
                ready_on,
                min(ends, default=None),
                tuple(failed),
                tuple(p.missing_content),
            )
        )
    return spans


def payment_periods(
    view: DischargeView, today: date, stay: StayView | None = None
) -> list[PaymentPeriod]:
    """Every readiness period of the discharge as it stands on `today`."""
    return [span.on(today) for span in payment_spans(view, stay)]
