"""What the viewer shows, in Norwegian bokmål and Oslo time: labels for the API's enums, dates
and amounts the Norwegian way, and the pathway picture's geometry (lanes, bars, marks).

Pure functions over the PathwayService replies; the templates only place what these return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp

from carepath.v1 import common_pb2, medications_pb2, pathway_pb2, referrals_pb2
from services.pathway.summaries import CANCER_MILESTONE_NAMES
from shared.ids import IdentifierError, NationalId

OSLO = ZoneInfo("Europe/Oslo")

MONTHS = (
    "januar",
    "februar",
    "mars",
    "april",
    "mai",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "desember",
)
SHORT_MONTHS = ("jan", "feb", "mar", "apr", "mai", "jun", "jul", "aug", "sep", "okt", "nov", "des")

ORG_NOUN = {
    common_pb2.ORGANISATION_KIND_MUNICIPALITY: "kommune",
    common_pb2.ORGANISATION_KIND_GP: "fastlegekontor",
    common_pb2.ORGANISATION_KIND_HOSPITAL: "sykehus",
}
LOCATION = {
    pathway_pb2.LOCATION_KIND_UNSPECIFIED: "Ukjent",
    pathway_pb2.LOCATION_KIND_HOME: "Hjemme",
    pathway_pb2.LOCATION_KIND_HOME_WITH_SERVICES: "Hjemme med kommunale tjenester",
    pathway_pb2.LOCATION_KIND_HOSPITAL: "Innlagt på sykehus",
    pathway_pb2.LOCATION_KIND_SHORT_TERM_NURSING_HOME: "Korttidsplass på sykehjem",
    pathway_pb2.LOCATION_KIND_LONG_TERM_NURSING_HOME: "Langtidsplass på sykehjem",
}
RECEIPT = {
    common_pb2.APP_REC_STATUS_UNSPECIFIED: ("Ikke kvittert", "pending"),
    common_pb2.APP_REC_STATUS_OK: ("Kvittert OK", "ok"),
    common_pb2.APP_REC_STATUS_OK_ERROR_IN_PART: ("Kvittert med feil i deler", "partial"),
    common_pb2.APP_REC_STATUS_REJECTED: ("Avvist", "rejected"),
}
MEDICATION_STATE = {
    medications_pb2.MEDICATION_STATE_ACTIVE: "I bruk",
    medications_pb2.MEDICATION_STATE_PAUSED: "Midlertidig stanset",
    medications_pb2.MEDICATION_STATE_DISCONTINUED: "Seponert",
}
#: The pathway's own Norwegian milestone names, keyed by the API's enum.
CANCER_MILESTONE = {
    referrals_pb2.CancerPathwayMilestone.Value(
        f"CANCER_PATHWAY_MILESTONE_{name}"
    ): text.capitalize()
    for name, text in CANCER_MILESTONE_NAMES.items()
}

#: The three lanes of the picture, top to bottom.
LANES = (
    (common_pb2.ORGANISATION_KIND_MUNICIPALITY, "Kommune"),
    (common_pb2.ORGANISATION_KIND_GP, "Fastlege"),
    (common_pb2.ORGANISATION_KIND_HOSPITAL, "Sykehus"),
)


def oslo(ts: Timestamp | datetime) -> datetime:
    moment = ts.ToDatetime(tzinfo=UTC) if isinstance(ts, Timestamp) else ts
    return moment.astimezone(OSLO)


def when(ts: Timestamp | datetime) -> str:
    """e.g. "15. nov. 2024 kl. 10:00" (Oslo time)."""
    t = oslo(ts)
    return f"{t.day}. {SHORT_MONTHS[t.month - 1]}. {t.year} kl. {t:%H:%M}"


def day(value: Timestamp | datetime | date | common_pb2.Date) -> str:
    """e.g. "19. november 2024"."""
    if isinstance(value, common_pb2.Date):
        value = date(value.year, value.month, value.day)
    elif not isinstance(value, date) or isinstance(value, datetime):
        value = oslo(value).date()
    return f"{value.day}. {MONTHS[value.month - 1]} {value.year}"


def iso(ts: Timestamp | datetime) -> str:
    """Machine-readable time for <time datetime=...>."""
    return oslo(ts).isoformat(timespec="minutes")


def kroner(amount: int) -> str:
    """e.g. "22 980 kr" (thin space between thousands, as Norwegian writes it)."""
    return f"{amount:,}".replace(",", "\u00a0") + "\u00a0kr"


def organisation(org: common_pb2.Organisation) -> str:
    noun = ORG_NOUN.get(org.kind, "virksomhet")
    return f"{noun.capitalize()} {org.her_id}" if org.her_id else noun.capitalize()


def count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def lane_name(kind: int) -> str:
    return next((name for lane, name in LANES if lane == kind), "Annet")


def _midnight(value: common_pb2.Date) -> datetime:
    return datetime(value.year, value.month, value.day, tzinfo=OSLO)


def age(value: str, today: date | None = None) -> int | None:
    """The age the identifier's birth date gives (None when it encodes none)."""
    try:
        born = NationalId.parse(value).birth_date
    except IdentifierError:
        return None
    if born is None:
        return None
    today = today or datetime.now(OSLO).date()
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


# --- the picture ------------------------------------------------------------------------


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


LEFT, RIGHT, TOP, LANE_HEIGHT = 110, 20, 30, 56


def picture(
    reply: pathway_pb2.Pathway, now: datetime, window_days: int | None = None, width: int = 1000
) -> Picture:
    """Lanes for municipality, GP and hospital over the span of the pathway: stays as bars in
    the hospital lane, the utskrivningsklar waiting period as a bar in the municipality lane (it
    pays), each message as a mark in its sender's lane coloured by its receipt, other events as
    dots, and each open deadline as a marker in the lane of the organisation it waits on, red
    when breached. With `window_days`, only that many days up to the latest event are drawn."""
    lane_y = {kind: TOP + i * LANE_HEIGHT + LANE_HEIGHT / 2 for i, (kind, _) in enumerate(LANES)}
    pic = Picture(width=width, height=int(TOP + len(LANES) * LANE_HEIGHT + 10), left=LEFT)
    pic.lanes = [(lane_y[kind], name) for kind, name in LANES]
    moments = [oslo(e.occurred_at) for e in reply.timeline]
    moments += [oslo(t.due) for t in reply.tasks]
    if not moments:
        return pic
    start = min(moments) - timedelta(days=2)
    end = max(moments) + timedelta(days=2)
    if window_days:
        latest = max(oslo(e.occurred_at) for e in reply.timeline) if reply.timeline else end
        start = max(start, latest - timedelta(days=window_days))
    span = (end - start).total_seconds() or 1.0
    inner = width - LEFT - RIGHT

    def shown(moment: datetime) -> bool:
        return start <= moment <= end

    def x(moment: datetime) -> float:
        clipped = min(max(moment, start), end)
        return round(LEFT + inner * (clipped - start).total_seconds() / span, 1)

    if start <= now <= end:
        pic.now_x = x(now)
    pic.ticks = _month_ticks(start, end, x) or [
        Tick(x(start), day(start)),
        Tick(x(end), day(end)),
    ]

    hospital, municipality = (
        lane_y[common_pb2.ORGANISATION_KIND_HOSPITAL],
        lane_y[common_pb2.ORGANISATION_KIND_MUNICIPALITY],
    )
    for stay in reply.stays:
        begin = oslo(stay.admitted_at)
        finish = oslo(stay.closed_at) if stay.HasField("closed_at") else end
        if finish < start:
            continue
        closed = f"utskrevet {when(stay.closed_at)}" if stay.HasField("closed_at") else "pågår"
        pic.bars.append(
            Bar(
                x=x(begin),
                y=hospital - 9,
                width=max(x(finish) - x(begin), 4),
                css="stay",
                label=stay.ward,
                title=f"Innlagt {when(stay.admitted_at)}, {stay.ward}, sykehus "
                f"{stay.hospital_her_id}; {closed}",
                open_end=not stay.HasField("closed_at"),
            )
        )
    for period in reply.payments:
        begin = _midnight(period.ready_on)
        until = _midnight(period.until)
        amount = (
            kroner(period.amount_nok) if not period.amount_unavailable_reason else "beløp ukjent"
        )
        pic.bars.append(
            Bar(
                x=x(begin),
                y=municipality - 9,
                width=max(x(until) - x(begin), 4),
                css="waiting",
                label=f"Utskrivningsklar: {period.days} døgn, {amount}",
                title=f"Utskrivningsklar fra {day(period.ready_on)}: {period.days} døgn à "
                f"kommunal betaling, {amount}",
                open_end=period.ongoing,
            )
        )
    messages = {m.event_id: m for m in reply.messages}
    for entry in reply.timeline:
        y = lane_y.get(entry.level)
        if y is None or not shown(oslo(entry.occurred_at)):
            continue
        message = messages.get(entry.event_id)
        if message is not None:
            label, css = RECEIPT[message.receipt]
            pic.marks.append(
                Mark(
                    x(oslo(entry.occurred_at)),
                    y,
                    "message",
                    f"message {css}",
                    f"{message.name} til {organisation(message.to)}, {when(message.sent_at)}: "
                    f"{label.lower()}",
                )
            )
        else:
            pic.marks.append(
                Mark(
                    x(oslo(entry.occurred_at)),
                    y,
                    "event",
                    "event",
                    f"{when(entry.occurred_at)}: {entry.summary}",
                )
            )
    for task in reply.tasks:
        y = lane_y.get(task.waiting_on.kind)
        if y is None or not shown(oslo(task.due)):
            continue
        state = "overskredet" if task.breached else "frist"
        pic.marks.append(
            Mark(
                x(oslo(task.due)),
                y,
                "deadline",
                "deadline breached" if task.breached else "deadline",
                f"Frist {when(task.due)} ({state}): {task.description}; venter på "
                f"{organisation(task.waiting_on).lower()}",
            )
        )
    for referral in reply.summary.referrals:
        for milestone in referral.cancer_milestones:
            if not milestone.HasField("due") or not shown(oslo(milestone.due)):
                continue
            reached = (
                f"nådd {when(milestone.reached_at)}"
                if milestone.HasField("reached_at")
                else "ikke nådd"
            )
            late = " – forsinket" if milestone.late else ""
            pic.marks.append(
                Mark(
                    x(oslo(milestone.due)),
                    hospital,
                    "deadline",
                    "deadline breached" if milestone.late else "deadline met",
                    f"Pakkeforløp, {CANCER_MILESTONE[milestone.milestone].lower()}: frist "
                    f"{when(milestone.due)}, {reached}{late}",
                )
            )
    breached = sum(1 for t in reply.tasks if t.breached)
    pic.description = (
        f"Pasientforløp fra {day(start + timedelta(days=2))} til {day(end - timedelta(days=2))}: "
        f"{len(reply.stays)} sykehusopphold, "
        f"{count(len(reply.messages), 'melding', 'meldinger')}, "
        f"{count(len(reply.tasks), 'åpen frist', 'åpne frister')}, {breached} overskredet."
    )
    return pic


def _month_ticks(start: datetime, end: datetime, x: Any) -> list[Tick]:
    """One tick per month (or per year over long spans), labelled in Norwegian."""
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
            ticks.append(Tick(x(moment), label))
