"""The pathway picture: one lane per level of care (kommune, fastlege, sykehus) over the span
of the pathway, each lane drawn by its own function from the PathwayService reply.

- the municipality lane: the utskrivningsklar waiting periods as bars (the municipality pays
  for them);
- the GP lane: nothing but its events and deadlines;
- the hospital lane: the stays as bars, and the cancer pathway's milestones as deadlines.

Every lane also shows the events at its level (a message as a diamond coloured by its
receipt, anything else as a dot) and the open deadlines waiting on it (red when breached).
Pure geometry, in Oslo time: the template only places what `picture` returns. Organisations
are named as the reply's directory entries name them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from carepath.v1 import common_pb2, pathway_pb2
from services.viewer.present import (
    CANCER_MILESTONE,
    GP,
    HOSPITAL,
    MUNICIPALITY,
    RECEIPT,
    SERVICE,
    SHORT_MONTHS,
    Directory,
    day,
    kroner,
    oslo,
    when,
)
from shared.times import OSLO

#: The three lanes of the picture, top to bottom.
LANES = (
    (MUNICIPALITY, "Kommune"),
    (GP, "Fastlege"),
    (HOSPITAL, "Sykehus"),
)
LEFT, RIGHT, TOP, LANE_HEIGHT = 110, 20, 30, 56
#: The margin before the first and after the last moment drawn.
MARGIN = timedelta(days=2)


@dataclass
class Mark:
    x: float
    y: float
    kind: str  # event | message | deadline | milestone
    css: str
    title: str


@dataclass
class Bar:
    x: float
    y: float
    width: float
    css: str
    label: str
    title: str
    open_end: bool = False


@dataclass
class Tick:
    x: float
    label: str


@dataclass
class Picture:
    width: int
    height: int
    lanes: list[tuple[float, str]] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    now_x: float | None = None
    description: str = ""
    left: int = 0  # where the time axis starts (the lane names stand before it)
    #: Per lane, the organisations it stands for, by name.
    who: list[tuple[str, str]] = field(default_factory=list)
    #: Where the patient's death is drawn, across every lane (None: alive, or outside).
    death_x: float | None = None
    death_title: str = ""


@dataclass
class Lane:
    """What one lane draws."""

    bars: list[Bar] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)


@dataclass(frozen=True)
class Axis:
    """The picture's time axis: the span drawn (Oslo time) and where a moment falls on it."""

    start: datetime
    end: datetime
    width: int

    @classmethod
    def of(cls, reply: pathway_pb2.Pathway, width: int, window_days: int | None) -> Axis | None:
        """From two days before the first event or deadline to two days after the last (with
        `window_days`: only that many days up to the latest event); None when there is none."""
        moments = [oslo(e.occurred_at) for e in reply.timeline]
        moments += [oslo(t.due) for t in reply.tasks]
        moments += [oslo(s.decided_at) for s in reply.municipal_services]
        if not moments:
            return None
        start = min(moments) - MARGIN
        end = max(moments) + MARGIN
        if window_days:
            latest = max(oslo(e.occurred_at) for e in reply.timeline) if reply.timeline else end
            start = max(start, latest - timedelta(days=window_days))
        return cls(start, end, width)

    def shown(self, moment: datetime) -> bool:
        return self.start <= moment <= self.end

    def x(self, moment: datetime) -> float:
        """Where `moment` is drawn; a moment outside the span sits at its edge."""
        span = (self.end - self.start).total_seconds() or 1.0
        inner = self.width - LEFT - RIGHT
        clipped = min(max(moment, self.start), self.end)
        return round(LEFT + inner * (clipped - self.start).total_seconds() / span, 1)


def picture(
    reply: pathway_pb2.Pathway, now: datetime, window_days: int | None = None, width: int = 1000
) -> Picture:
    """The lanes for municipality, GP and hospital (`LANES`), each drawn by its own function
    over the span of the pathway. With `window_days`, only that many days up to the latest
    event are drawn."""
    names = Directory.of(reply.organisations)
    lane_y = {kind: TOP + i * LANE_HEIGHT + LANE_HEIGHT / 2 for i, (kind, _) in enumerate(LANES)}
    pic = Picture(
        width=width,
        height=int(TOP + len(LANES) * LANE_HEIGHT + 10),
        lanes=[(lane_y[kind], name) for kind, name in LANES],
        left=LEFT,
        who=lane_organisations(reply, names),
    )
    axis = Axis.of(reply, width, window_days)
    if axis is None:
        return pic
    if axis.shown(now):
        pic.now_x = axis.x(now)
    if reply.HasField("died_at") and axis.shown(oslo(reply.died_at)):
        pic.death_x = axis.x(oslo(reply.died_at))
        pic.death_title = f"Pasienten døde {when(reply.died_at)}"
    pic.ticks = month_ticks(axis) or [
        Tick(axis.x(axis.start), day(axis.start)),
        Tick(axis.x(axis.end), day(axis.end)),
    ]
    for kind, _ in LANES:
        lane = DRAW_LANE[kind](reply, axis, lane_y[kind], names)
        pic.bars += lane.bars
        pic.marks += lane.marks
    pic.description = description(reply, axis)
    return pic


# --- the lanes ----------------------------------------------------------------------------


def municipality_lane(reply: pathway_pb2.Pathway, axis: Axis, y: float, names: Directory) -> Lane:
    """The utskrivningsklar waiting periods (the municipality pays for them), the services it
    gives (from their start to their end), the municipality's events and the deadlines waiting
    on it."""
    services = (service_bar(s, axis, y, names) for s in reply.municipal_services)
    return Lane(
        bars=[waiting_bar(period, axis, y, names) for period in reply.payments]
        + [bar for bar in services if bar is not None],
        marks=event_marks(reply, MUNICIPALITY, axis, y, names)
        + deadline_marks(reply, MUNICIPALITY, axis, y, names),
    )


def gp_lane(reply: pathway_pb2.Pathway, axis: Axis, y: float, names: Directory) -> Lane:
    """The GP's events and the deadlines waiting on the GP."""
    return Lane(
        marks=event_marks(reply, GP, axis, y, names) + deadline_marks(reply, GP, axis, y, names)
    )


def hospital_lane(reply: pathway_pb2.Pathway, axis: Axis, y: float, names: Directory) -> Lane:
    """The stays, the hospital's events, the deadlines waiting on it and the cancer
    pathway's milestones."""
    stays = (stay_bar(stay, axis, y, names) for stay in reply.stays)
    return Lane(
        bars=[bar for bar in stays if bar is not None],
        marks=event_marks(reply, HOSPITAL, axis, y, names)
        + deadline_marks(reply, HOSPITAL, axis, y, names)
        + milestone_marks(reply, axis, y),
    )


DRAW_LANE: dict[int, Callable[[pathway_pb2.Pathway, Axis, float, Directory], Lane]] = {
    MUNICIPALITY: municipality_lane,
    GP: gp_lane,
    HOSPITAL: hospital_lane,
}


# --- what the lanes are drawn of ----------------------------------------------------------


def stay_bar(stay: pathway_pb2.StayPeriod, axis: Axis, y: float, names: Directory) -> Bar | None:
    """A hospital stay, running to the end of the picture while it is open (None: it ended
    before the picture starts)."""
    begin = oslo(stay.admitted_at)
    closed = stay.HasField("closed_at")
    finish = oslo(stay.closed_at) if closed else axis.end
    if finish < axis.start:
        return None
    state = f"utskrevet {when(stay.closed_at)}" if closed else "pågår"
    return Bar(
        x=axis.x(begin),
        y=y - 9,
        width=max(axis.x(finish) - axis.x(begin), 4),
        css="stay",
        label=stay.ward,
        title=f"Innlagt {when(stay.admitted_at)}, {stay.ward}, "
        f"{names.name(stay.hospital_her_id, HOSPITAL)}; {state}",
        open_end=not closed,
    )


def service_bar(
    service: pathway_pb2.MunicipalServicePeriod, axis: Axis, y: float, names: Directory
) -> Bar | None:
    """A municipal service from its start, running to the end of the picture while it lasts
    (None: not started, or over before the picture starts)."""
    if not service.HasField("started_at"):
        return None
    begin = oslo(service.started_at)
    ended = service.HasField("ended_at")
    finish = oslo(service.ended_at) if ended else axis.end
    if finish < axis.start:
        return None
    name = SERVICE[service.kind]
    where = (
        f", {names.name(service.institution_her_id, MUNICIPALITY)}"
        if service.institution_her_id
        else ""
    )
    state = f"sluttet {when(service.ended_at)}" if ended else "pågår"
    return Bar(
        x=axis.x(begin),
        y=y - 9,
        width=max(axis.x(finish) - axis.x(begin), 4),
        css="service",
        label=name,
        title=f"{name}{where}: vedtatt {day(service.decided_at)}, startet "
        f"{when(service.started_at)}; {state}",
        open_end=not ended,
    )


def waiting_bar(period: pathway_pb2.PaymentPeriod, axis: Axis, y: float, names: Directory) -> Bar:
    """An utskrivningsklar period: its days and what the municipality pays for them."""
    begin = _midnight(period.ready_on)
    until = _midnight(period.until)
    amount = kroner(period.amount_nok) if not period.amount_unavailable_reason else "beløp ukjent"
    if not period.payable:
        amount += " (ikke betalingspliktig)"
    payer = (
        f", betales av {names.name(period.municipality_her_id, MUNICIPALITY)}"
        if period.municipality_her_id
        else ""
    )
    return Bar(
        x=axis.x(begin),
        y=y - 9,
        width=max(axis.x(until) - axis.x(begin), 4),
        css="waiting",
        label=f"Utskrivningsklar: {period.days} døgn, {amount}",
        title=f"Utskrivningsklar fra {day(period.ready_on)}: {period.days} døgn à "
        f"kommunal betaling, {amount}"
        + payer
        + (f". {period.not_payable_text}" if not period.payable else ""),
        open_end=period.ongoing,
    )


def event_marks(
    reply: pathway_pb2.Pathway, kind: int, axis: Axis, y: float, names: Directory
) -> list[Mark]:
    """The events at this level of care within the span: a message coloured by its receipt,
    any other event a dot."""
    messages = {m.event_id: m for m in reply.messages}
    marks: list[Mark] = []
    for entry in reply.timeline:
        at = oslo(entry.occurred_at)
        if entry.level != kind or not axis.shown(at):
            continue
        message = messages.get(entry.event_id)
        if message is None:
            marks.append(Mark(axis.x(at), y, "event", "event", f"{when(at)}: {entry.summary}"))
            continue
        label, css = RECEIPT[message.receipt]
        title = (
            f"{message.name} til {names.organisation(message.to)}, "
            f"{when(message.sent_at)}: {label.lower()}"
        )
        marks.append(Mark(axis.x(at), y, "message", f"message {css}", title))
    return marks


def deadline_marks(
    reply: pathway_pb2.Pathway, kind: int, axis: Axis, y: float, names: Directory
) -> list[Mark]:
    """The open deadlines waiting on this kind of organisation, red when breached."""
    marks: list[Mark] = []
    for task in reply.tasks:
        due = oslo(task.due)
        if task.waiting_on.kind != kind or not axis.shown(due):
            continue
        state = "overskredet" if task.breached else "frist"
        marks.append(
            Mark(
                axis.x(due),
                y,
                "deadline",
                "deadline breached" if task.breached else "deadline",
                f"Frist {when(task.due)} ({state}): {task.description}; venter på "
                f"{names.organisation(task.waiting_on, in_text=True)}",
            )
        )
    return marks


def milestone_marks(reply: pathway_pb2.Pathway, axis: Axis, y: float) -> list[Mark]:
    """The cancer pathways' milestones with a due date within the span, red when late."""
    marks: list[Mark] = []
    for referral in reply.summary.referrals:
        for milestone in referral.cancer_milestones:
            if not milestone.HasField("due") or not axis.shown(oslo(milestone.due)):
                continue
            reached = (
                f"nådd {when(milestone.reached_at)}"
                if milestone.HasField("reached_at")
                else "ikke nådd"
            )
            late = " – forsinket" if milestone.late else ""
            marks.append(
                Mark(
                    axis.x(oslo(milestone.due)),
                    y,
                    "deadline",
                    "deadline breached" if milestone.late else "deadline met",
                    f"Pakkeforløp, {CANCER_MILESTONE[milestone.milestone].lower()}: frist "
                    f"{when(milestone.due)}, {reached}{late}",
                )
            )
    return marks


# --- around the lanes -----------------------------------------------------------------------


def lane_name(kind: int) -> str:
    return next((name for lane, name in LANES if lane == kind), "Annet")


def lane_organisations(reply: pathway_pb2.Pathway, names: Directory) -> list[tuple[str, str]]:
    """Who the picture's lanes stand for: per lane, the organisations of the registers and of
    the events, messages and stays, by name, in the order they appear."""
    found: dict[int, dict[str, None]] = {kind: {} for kind, _ in LANES}
    r = reply.relations
    for her_id, kind in (
        (r.residence_municipality_her_id, MUNICIPALITY),
        (r.temporary_residence_municipality_her_id, MUNICIPALITY),
        (r.fastlege_her_id, GP),
    ):
        if her_id:
            found[kind][her_id] = None
    for entry in reply.timeline:
        if entry.level in found and entry.actor.organisation.her_id:
            found[entry.level][entry.actor.organisation.her_id] = None
    for message in reply.messages:
        if message.to.kind in found and message.to.her_id:
            found[message.to.kind][message.to.her_id] = None
    for stay in reply.stays:
        found[HOSPITAL][stay.hospital_her_id] = None
    return [
        (lane, ", ".join(names.name(her_id, kind) for her_id in found[kind]))
        for kind, lane in LANES
        if found[kind]
    ]


def description(reply: pathway_pb2.Pathway, axis: Axis) -> str:
    """The picture in words, for those who cannot see it."""
    breached = sum(1 for t in reply.tasks if t.breached)
    started = sum(1 for s in reply.municipal_services if s.HasField("started_at"))
    services = f"{count(started, 'kommunal tjeneste', 'kommunale tjenester')}, " if started else ""
    died = f" Pasienten døde {when(reply.died_at)}." if reply.HasField("died_at") else ""
    return (
        f"Pasientforløp fra {day(axis.start + MARGIN)} til {day(axis.end - MARGIN)}: "
        f"{len(reply.stays)} sykehusopphold, "
        f"{count(len(reply.messages), 'melding', 'meldinger')}, "
        f"{services}{count(len(reply.tasks), 'åpen frist', 'åpne frister')}, "
        f"{breached} overskredet.{died}"
    )


def month_ticks(axis: Axis) -> list[Tick]:
    """One tick per month (or per year over long spans), labelled in Norwegian."""
    start, end = axis.start, axis.end
    months = (end.year - start.year) * 12 + end.month - start.month
    step = 1 if months <= 14 else 3 if months <= 40 else 12
    ticks: list[Tick] = []
    year, month = start.year, start.month
    while True:
        month += 1
        if month > 12:
            year, month = year + 1, 1
        moment = datetime(year, month, 1, tzinfo=OSLO)
        if moment > end:
            return ticks
        if (month - 1) % step == 0:
            label = (
                f"{SHORT_MONTHS[month - 1]} {year}"
                if month == 1 or step > 1
                else SHORT_MONTHS[month - 1]
            )
            ticks.append(Tick(axis.x(moment), label))


def count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _midnight(value: common_pb2.Date) -> datetime:
    return datetime(value.year, value.month, value.day, tzinfo=OSLO)
