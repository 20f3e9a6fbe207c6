"""What the fold derives, as plain data: the referrals, stays and discharges folded so far,
their PLO messages, the open tasks and where the patient is (pure, no I/O). The folds that
build them live beside this module, one per kind of aggregate."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared import rules
from shared.times import OSLO, utc_iso


@dataclass
class PloMessage:
    name: str  # Norwegian name of the message, e.g. "Epikrise"
    to_her_id: str
    to_kind: str
    sent_at: str
    event_id: str  # the event that sent it (the mark on the pathway's timeline)
    status: str | None = None  # the receiver's AppRec (OK, REJECTED, OK_ERROR_IN_PART)
    answered_at: str | None = None  # clinical time of that AppRec (the first one)

    def receipt(self, status: str, when: str) -> None:
        """The receiver's AppRec at clinical time `when` (a repeated one keeps the first
        time: the message was answered then)."""
        self.status = status
        self.answered_at = self.answered_at or when

    @property
    def answered(self) -> bool:
        return self.status is not None


OPEN_REFERRAL_STATES = frozenset({"SENT", "RECEIVED", "FORWARDED", "ACCEPTED"})
#: A cancer pathway stops being followed when its referral is declined or withdrawn.
CANCER_PATHWAY_ENDED = frozenset({"REJECTED", "CANCELLED", "RECEIPT_REJECTED"})
CANCER_MILESTONES = tuple(m.upper() for m in rules.CANCER_MILESTONES)


@dataclass(frozen=True)
class CancerMilestoneStatus:
    """One milestone of a cancer pathway: its segment's start, due time and standard days, and
    when it was reached (UTC ISO strings; None while unknown)."""

    milestone: str
    segment_start: str | None
    due: str | None
    reached_at: str | None
    standard_days: int
    treatment: str | None


@dataclass(frozen=True)
class CancerPathwayTotal:
    """A cancer pathway measured as Helsedirektoratet measures it: calendar days from the
    referral received to the first treatment's start against the standard total for that
    treatment (UTC ISO strings; None while unknown). `within_standard` is None until the
    treatment has started (only then is the pathway measured)."""

    started_at: str
    treatment_started_at: str | None
    elapsed_days: int | None  # None while the treatment has not started
    standard_total_days: int | None  # None before the treatment is decided
    total_due: str | None
    within_standard: bool | None
    end_reason: str | None
    ended_at: str | None


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
    waiting_since: str  # clinical time the current wait began (sent, forwarded, received)
    cancer_started_at: str | None = None  # the first receipt: the cancer pathway's clock
    cancer_reached: dict[str, str] = field(default_factory=dict)  # milestone → clinical time
    cancer_treatment: str | None = None
    cancer_end_reason: str | None = None  # ended without treatment (pakkeforløp slutt)
    cancer_ended_at: str | None = None
    resent: int = 0  # times corrected and resent after a rejected receipt
    messages: list[PloMessage] = field(default_factory=list)  # sent, then each forward
    #: Each receiving hospital in turn: (HER-id, since, until the forward; None: still it).
    receivers: list[tuple[str, str, str | None]] = field(default_factory=list)
    closed_at: str | None = None  # clinical time it stopped being open

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_REFERRAL_STATES

    @property
    def cancer_pathway_running(self) -> bool:
        """The pathway's deadlines run: started, not ended without treatment, the referral
        neither declined nor withdrawn."""
        return bool(
            self.cancer_pathway
            and self.cancer_started_at
            and self.cancer_end_reason is None
            and self.state not in CANCER_PATHWAY_ENDED
        )

    @property
    def serious_illness_suspected(self) -> bool:
        """An URGENT referral or one into a cancer pathway: assessed sooner (§ 2-2)."""
        return self.priority == "URGENT" or self.cancer_pathway is not None

    def cancer_total(self) -> CancerPathwayTotal | None:
        """The pathway's total from the referral received against its standard total for
        the treatment decided; within standard when the treatment started within it, even if
        a segment ran late."""
        if not self.cancer_pathway or not self.cancer_started_at:
            return None
        started = datetime.fromisoformat(self.cancer_started_at)
        treatment_at = self.cancer_reached.get("TREATMENT_START")
        standard = due = None
        if self.cancer_treatment:
            standard = rules.cancer_total_days(self.cancer_pathway, self.cancer_treatment)
            first_day = started.astimezone(OSLO).date()
            due = utc_iso(rules.end_of_day(first_day + timedelta(days=standard)))
        elapsed = within = None
        if treatment_at is not None:
            elapsed = rules.cancer_elapsed_days(started, datetime.fromisoformat(treatment_at))
            within = standard is not None and elapsed <= standard
        return CancerPathwayTotal(
            started_at=self.cancer_started_at,
            treatment_started_at=treatment_at,
            elapsed_days=elapsed,
            standard_total_days=standard,
            total_due=due,
            within_standard=within,
            end_reason=self.cancer_end_reason,
            ended_at=self.cancer_ended_at,
        )

    def cancer_milestones(self) -> list[CancerMilestoneStatus]:
        """Every milestone of the referral's cancer pathway against its standard time; each
        segment starts when the previous milestone is reached (the receipt for the first)."""
        if not self.cancer_pathway or not self.cancer_started_at:
            return []
        statuses = []
        start: str | None = self.cancer_started_at
        for milestone in CANCER_MILESTONES:
            treatment = self.cancer_treatment if milestone == "TREATMENT_START" else None
            days, due = 0, None
            if milestone != "TREATMENT_START" or treatment:
                days = rules.cancer_segment_days(self.cancer_pathway, milestone, treatment)
                if start:
                    begun = datetime.fromisoformat(start)
                    due = utc_iso(
                        rules.cancer_segment_due(self.cancer_pathway, milestone, begun, treatment)
                    )
            reached = self.cancer_reached.get(milestone)
            statuses.append(CancerMilestoneStatus(milestone, start, due, reached, days, treatment))
            start = reached
        return statuses


@dataclass
class StayView:
    stay_id: str
    hospital_her_id: str  # the responsible hospital now
    ward: str
    admitted_at: str
    since: str  # admitted, or moved to the current hospital/ward
    existing_service_user: bool
    closed_at: str | None = None
    #: Whether the hospital expected municipal services after discharge at admission (the
    #: admission notice is then a condition of the municipality's duty to pay).
    municipal_services_likely: bool = False
    health_information_sent: bool = False
    messages: dict[str, PloMessage] = field(default_factory=dict)
    #: Every hospital responsible in turn, with when it became responsible.
    hospitals: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ReadyPeriod:
    ready_at: str
    answered_at: str | None = None
    can_receive: bool | None = None
    receive_on: str | None = None  # ISO date
    ended_at: str | None = None  # withdrawn (avmelding) or discharged
    #: The items the readiness notice did not say (rules.readiness_notice_content's keys).
    missing_content: list[str] = field(default_factory=list)


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


#: The municipal services that are a place in an institution, and the location each gives.
INSTITUTION_LOCATIONS = {
    "SHORT_TERM_STAY": "SHORT_TERM_NURSING_HOME",
    "LONG_TERM_STAY": "LONG_TERM_NURSING_HOME",
    "REHABILITATION": "IN_REHABILITATION",
}


@dataclass
class MunicipalServiceView:
    """A municipal service: decided (vedtak), started, ended (UTC ISO strings; None while not
    yet)."""

    service_id: str
    kind: str  # HOME_NURSING | PRACTICAL_ASSISTANCE | SHORT_TERM_STAY | ... (shared.events)
    municipality_her_id: str
    institution_her_id: str | None
    decided_at: str
    starts_on: str  # ISO date
    started_at: str | None = None
    ended_at: str | None = None
    end_reason: str | None = None

    @property
    def state(self) -> str:
        if self.ended_at is not None:
            return "ENDED"
        return "STARTED" if self.started_at is not None else "DECIDED"

    @property
    def running(self) -> bool:
        """The patient receives it now."""
        return self.started_at is not None and self.ended_at is None


@dataclass(frozen=True)
class Death:
    """The registers' death: its moment (UTC ISO), day (Oslo) and the event that recorded it."""

    at: str
    on: str  # ISO date
    event_id: str


@dataclass
class CorrespondenceView:
    """One correspondence between the municipality and the GP: the message that opened it
    (sender and receiver from the event, which the service took from the registers) and, for
    a Forespørsel, when it was answered."""

    correspondence_id: str
    message_type: str
    from_her_id: str
    from_kind: str
    to_her_id: str
    to_kind: str
    sent_at: str
    request_message_id: str | None = None  # set for a Forespørsel
    answered_at: str | None = None
    messages: dict[str, PloMessage] = field(default_factory=dict)

    @property
    def awaits_answer(self) -> bool:
        return self.request_message_id is not None and self.answered_at is None


@dataclass(frozen=True)
class Task:
    """Something waiting on an organisation, with its due time (UTC ISO strings)."""

    task_id: str
    kind: str
    description: str
    waiting_on_her_id: str
    waiting_on_kind: str
    since: str
    due: str
    aggregate_id: str


@dataclass(frozen=True)
class Location:
    """Where the patient is: kind (HOSPITAL, …; UNSPECIFIED when unknown), where, since."""

    kind: str
    her_id: str | None
    ward: str | None
    since: str | None


UNKNOWN = Location("UNSPECIFIED", None, None, None)
