"""What the viewer shows, in Norwegian bokmål and Oslo time: labels for the API's enums, dates
and amounts the Norwegian way, organisations by the names the directory gives them, the access
log in plain words for the citizen, and the pathway picture's geometry (lanes, bars, marks).

Pure functions over the PathwayService and AccessService replies; the templates only place what
these return.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp

from carepath.v1 import common_pb2, medications_pb2, pathway_pb2, referrals_pb2, registry_pb2
from services.pathway.folding.summaries import CANCER_MILESTONE_NAMES
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

MUNICIPALITY = common_pb2.ORGANISATION_KIND_MUNICIPALITY
GP = common_pb2.ORGANISATION_KIND_GP
HOSPITAL = common_pb2.ORGANISATION_KIND_HOSPITAL

ORG_NOUN: dict[int, str] = {
    MUNICIPALITY: "kommune",
    GP: "fastlegekontor",
    HOSPITAL: "sykehus",
    common_pb2.ORGANISATION_KIND_REGISTRY: "registerforvalter",
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
    (MUNICIPALITY, "Kommune"),
    (GP, "Fastlege"),
    (HOSPITAL, "Sykehus"),
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


def unnamed(her_id: str, kind: int) -> str:
    """An organisation the directory does not know: its kind and HER-id ("Kommune 4201")."""
    noun = ORG_NOUN.get(kind, "virksomhet")
    return f"{noun.capitalize()} {her_id}" if her_id else noun.capitalize()


def organisation(org: common_pb2.Organisation) -> str:
    return unnamed(org.her_id, org.kind)


@dataclass(frozen=True)
class Directory:
    """The names of the organisations a reply names, as the directory (Adresseregisteret) gives
    them in the reply's `organisations`. One the directory does not know keeps its kind and
    HER-id, so the page still says who it is."""

    names: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, organisations: Iterable[registry_pb2.OrganisationEntry]) -> Directory:
        return cls({o.her_id: o.name for o in organisations if o.her_id and o.name})

    def name(self, her_id: str, kind: int = 0, *, in_text: bool = False) -> str:
        """The name people know it by ("Fjordvik kommune"); unknown: its kind and HER-id
        ("Kommune 4201", within a sentence "kommune 4201")."""
        if her_id in self.names:
            return self.names[her_id]
        text = unnamed(her_id, kind)
        return text[0].lower() + text[1:] if in_text else text

    def organisation(self, org: common_pb2.Organisation, *, in_text: bool = False) -> str:
        return self.name(org.her_id, org.kind, in_text=in_text)


def institution(location: pathway_pb2.Location, names: Directory) -> str:
    """The hospital or institution the patient is at, by name ("" when not known)."""
    if not location.her_id:
        return ""
    kind = HOSPITAL if location.kind == pathway_pb2.LOCATION_KIND_HOSPITAL else 0
    return names.name(location.her_id, kind)


def place(location: pathway_pb2.Location, names: Directory) -> str:
    """Where the patient is, by name: the institution and the ward ("" when neither is known)."""
    return ", ".join(part for part in (institution(location, names), location.ward) if part)


def register_facts(relations: pathway_pb2.CareRelations, names: Directory) -> list[tuple[str, str]]:
    """The patient's fastlege and municipalities as the registers (Fastlegeregisteret,
    Folkeregisteret) say now, labelled for a definition list."""
    r = relations
    fastlege = "Ikke registrert"
    if r.fastlege_her_id:
        fastlege = names.name(r.fastlege_her_id, GP)
        if r.fastlege_hpr_number:
            fastlege += f" (lege med HPR-nummer {r.fastlege_hpr_number})"
    residence = r.residence_municipality_her_id
    stay = r.temporary_residence_municipality_her_id
    return [
        ("Fastlege", fastlege),
        ("Bostedskommune", names.name(residence, MUNICIPALITY) if residence else "Ikke registrert"),
        ("Oppholdskommune", names.name(stay, MUNICIPALITY) if stay else "Ingen registrert"),
    ]


def emergency(reply: pathway_pb2.Pathway) -> bool:
    """Whether the caller reads the pathway on akuttilgang (emergency access)."""
    return reply.access_basis == common_pb2.ACCESS_BASIS_EMERGENCY


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


# --- the citizen's view ------------------------------------------------------------------

REFERRAL_STATE = {
    referrals_pb2.REFERRAL_STATE_SENT: "Sendt, venter på at sykehuset mottar den",
    referrals_pb2.REFERRAL_STATE_RECEIVED: "Mottatt, venter på vurdering",
    referrals_pb2.REFERRAL_STATE_RECEIPT_REJECTED: "Kom ikke fram, må sendes på nytt",
    referrals_pb2.REFERRAL_STATE_ACCEPTED: "Vurdert: du har rett til helsehjelp",
    referrals_pb2.REFERRAL_STATE_REJECTED: "Vurdert: ikke rett til helsehjelp",
    referrals_pb2.REFERRAL_STATE_FORWARDED: "Sendt videre til et annet sykehus",
    referrals_pb2.REFERRAL_STATE_COMPLETED: "Avsluttet",
    referrals_pb2.REFERRAL_STATE_CANCELLED: "Trukket tilbake",
}
PRIORITY = {
    referrals_pb2.REFERRAL_PRIORITY_ROUTINE: "Vanlig",
    referrals_pb2.REFERRAL_PRIORITY_URGENT: "Haster",
}
CANCER_PATHWAY = {
    referrals_pb2.CANCER_PATHWAY_BREAST: "Pakkeforløp for brystkreft",
    referrals_pb2.CANCER_PATHWAY_COLORECTAL: "Pakkeforløp for tykk- og endetarmskreft",
    referrals_pb2.CANCER_PATHWAY_LYMPHOMA: "Pakkeforløp for lymfom",
}


@dataclass(frozen=True)
class ReferralLine:
    sent: str
    sent_iso: str
    sender: str
    receiver: str
    state: str
    priority: str
    pathway: str


def open_referrals(reply: pathway_pb2.Pathway, names: Directory) -> list[ReferralLine]:
    """The referrals still open, most recently sent first, in the citizen's words."""
    return [
        ReferralLine(
            sent=when(r.sent_at),
            sent_iso=iso(r.sent_at),
            sender=names.name(r.sender_her_id, GP),
            receiver=names.name(r.receiver_her_id, HOSPITAL),
            state=REFERRAL_STATE.get(r.state, "Ukjent"),
            priority=PRIORITY.get(r.priority, ""),
            pathway=CANCER_PATHWAY.get(r.cancer_pathway, ""),
        )
        for r in reply.summary.referrals
        if r.open
    ]


#: What each call did, as the citizen reads it in the access list ("Service/Method").
CALL = {
    "PathwayService/GetPathway": "Så pasientforløpet ditt",
    "PathwayService/ListPathways": "Så deg på kommunens arbeidsliste",
    "PathwayService/WatchPathway": "Fulgte med på endringer i forløpet ditt",
    "ReferralService/SendReferral": "Sendte en henvisning",
    "ReferralService/RecordReferralReceipt": "Kvitterte for en henvisning",
    "ReferralService/AcceptReferral": "Vurderte en henvisning og ga deg rett til helsehjelp",
    "ReferralService/RejectReferral": "Vurderte og avslo en henvisning",
    "ReferralService/ForwardReferral": "Sendte en henvisning videre",
    "ReferralService/CompleteReferral": "Avsluttet en henvisning",
    "ReferralService/RecordCancerPathwayMilestone": "Registrerte et steg i pakkeforløpet",
    "ReferralService/CancelReferral": "Trakk tilbake en henvisning",
    "ReferralService/GetReferral": "Så en henvisning",
    "AdmissionService/AdmitPatient": "Registrerte at du ble lagt inn",
    "AdmissionService/SendAdmissionNotice": "Sendte melding om at du var lagt inn",
    "AdmissionService/RecordAdmissionReport": "Sendte innleggelsesrapport til sykehuset",
    "AdmissionService/SendHealthInformation": "Sendte helseopplysninger om deg",
    "AdmissionService/RecordMessageReceipt": "Kvitterte for en melding om deg",
    "AdmissionService/TransferPatient": "Flyttet deg til et annet sykehus",
    "AdmissionService/CloseStay": "Avsluttet et sykehusopphold",
    "AdmissionService/GetStay": "Så et sykehusopphold",
    "AdmissionService/ListStays": "Så sykehusoppholdene dine",
    "DischargeService/DeclareReadyForDischarge": "Meldte at du var klar til å skrives ut",
    "DischargeService/AnswerReadiness": "Svarte på når kommunen kunne ta imot deg",
    "DischargeService/WithdrawReadiness": "Trakk tilbake meldingen om at du var utskrivningsklar",
    "DischargeService/DischargePatient": "Skrev deg ut fra sykehuset",
    "DischargeService/SendEpicrisis": "Sendte epikrise (brev om sykehusoppholdet)",
    "DischargeService/RecordMessageReceipt": "Kvitterte for en melding om deg",
    "DischargeService/GetDischarge": "Så utskrivningen din",
    "MedicationService/PrescribeMedication": "Skrev et legemiddel inn på legemiddellisten",
    "MedicationService/ChangeDose": "Endret dosen av et legemiddel",
    "MedicationService/PauseMedication": "Stanset et legemiddel for en periode",
    "MedicationService/ResumeMedication": "Startet et legemiddel igjen",
    "MedicationService/DiscontinueMedication": "Avsluttet (seponerte) et legemiddel",
    "MedicationService/ReconcileMedicationList": "Gikk gjennom legemiddellisten din",
    "MedicationService/GetMedicationList": "Så legemiddellisten din",
    "RegistryService/RecordResidence": "Oppdaterte bostedskommunen din fra Folkeregisteret",
    "RegistryService/RecordTemporaryResidence": "Oppdaterte oppholdskommunen din",
    "RegistryService/AssignFastlege": "Oppdaterte fastlegen din fra Fastlegeregisteret",
    "RegistryService/GetRegistration": "Så registeropplysningene dine",
    "RegistryService/RegisterOrganisation": "Registrerte en virksomhet i Adresseregisteret",
    "RegistryService/ListOrganisations": "Slo opp virksomheter i Adresseregisteret",
    "AccessService/BlockAccess": "Sperret tilgang til opplysningene dine",
    "AccessService/LiftBlock": "Opphevet en sperring",
    "AccessService/GetBlocks": "Så sperringene dine",
    "AccessService/RequestEmergencyAccess": "Ba om akuttilgang til opplysningene dine",
    "AccessService/ListEmergencyAccesses": "Kontrollerte en akuttilgang til opplysningene dine",
    "AccessService/ListAccesses": "Så hvem som har sett på opplysningene dine",
}
#: The ground a caller was let in on, as the citizen reads it.
BASIS = {
    common_pb2.ACCESS_BASIS_UNSPECIFIED: "Ingen",
    common_pb2.ACCESS_BASIS_FASTLEGE: "Fastlegen din",
    common_pb2.ACCESS_BASIS_REFERRAL_SENDER: "Har sendt en henvisning for deg",
    common_pb2.ACCESS_BASIS_RESIDENCE_MUNICIPALITY: "Kommunen du bor i",
    common_pb2.ACCESS_BASIS_TEMPORARY_RESIDENCE_MUNICIPALITY: "Kommunen du oppholder deg i",
    common_pb2.ACCESS_BASIS_MESSAGE_RECEIVER: "Fikk melding om sykehusoppholdet ditt",
    common_pb2.ACCESS_BASIS_REFERRAL_RECEIVER: "Har mottatt en henvisning for deg",
    common_pb2.ACCESS_BASIS_STAY_HOSPITAL: "Sykehuset du er eller var innlagt på",
    common_pb2.ACCESS_BASIS_ADMITTING_HOSPITAL: "Sykehuset som la deg inn",
    common_pb2.ACCESS_BASIS_RECEIPT_DUE: "Skulle kvittere for en melding om deg",
    common_pb2.ACCESS_BASIS_SELF: "Deg selv",
    common_pb2.ACCESS_BASIS_EMERGENCY: "Akuttilgang",
    common_pb2.ACCESS_BASIS_REGISTER_KEEPER: "Oppdatering fra de nasjonale registrene",
    common_pb2.ACCESS_BASIS_ORGANISATION_DIRECTORY: "Adresseregisteret",
    common_pb2.ACCESS_BASIS_SUPERVISOR: "Kontroll av akuttilgang",
    common_pb2.ACCESS_BASIS_OWN_ORGANISATION: "Kommunens egen arbeidsliste",
}
PURPOSE = {
    common_pb2.ACCESS_PURPOSE_UNSPECIFIED: "Ikke oppgitt",
    common_pb2.ACCESS_PURPOSE_HEALTH_CARE: "Helsehjelp",
    common_pb2.ACCESS_PURPOSE_CARE_COORDINATION: "Koordinering av tjenestene dine",
    common_pb2.ACCESS_PURPOSE_EMERGENCY_CARE: "Akutt helsehjelp",
    common_pb2.ACCESS_PURPOSE_CITIZEN_INSIGHT: "Innsyn i egne opplysninger",
    common_pb2.ACCESS_PURPOSE_REGISTER_MAINTENANCE: "Oppdatering av registeropplysninger",
    common_pb2.ACCESS_PURPOSE_ACCESS_REVIEW: "Kontroll av tilgang",
    common_pb2.ACCESS_PURPOSE_ACCESS_MANAGEMENT: "Styring av hvem som får se opplysningene",
}
EMERGENCY_REASON = {
    common_pb2.EMERGENCY_REASON_LIFE_THREATENING: "Livet eller helsen din var i fare",
    common_pb2.EMERGENCY_REASON_PATIENT_CANNOT_CONSENT: "Du kunne ikke samtykke",
    common_pb2.EMERGENCY_REASON_URGENT_CARE_WITHOUT_RELATIONSHIP: (
        "Akutt helsehjelp uten kjent behandlingsforhold (legevakt, ambulanse)"
    ),
}
#: The call's outcome (a gRPC status name): the words and whether access was refused.
OUTCOME = {
    "OK": ("Fikk tilgang", False),
    "PERMISSION_DENIED": ("Avvist: hadde ikke tilgang", True),
    "UNAUTHENTICATED": ("Avvist: ikke innlogget", True),
    "NOT_FOUND": ("Fant ingen opplysninger", False),
    "INVALID_ARGUMENT": ("Ugyldig forespørsel", False),
}


@dataclass(frozen=True)
class AccessLine:
    """One line of the citizen's access list (innsynslogg)."""

    when: str
    iso: str
    who: str
    person: str
    by_self: bool
    what: str
    basis: str
    purpose: str
    outcome: str
    refused: bool
    emergency: bool
    emergency_reason: str


def access_line(record: registry_pb2.AccessRecord) -> AccessLine:
    org = record.actor.organisation
    who = "Deg selv" if record.by_self else record.organisation_name or organisation(org)
    outcome, refused = OUTCOME.get(record.outcome, (f"Feil ({record.outcome})", False))
    return AccessLine(
        when=when(record.at),
        iso=iso(record.at),
        who=who,
        person=f"HPR-nummer {record.actor.person.hpr_number}"
        if record.actor.person.hpr_number
        else "",
        by_self=record.by_self,
        what=CALL.get(record.call, record.call),
        basis=BASIS.get(record.basis, "Ukjent"),
        purpose=PURPOSE.get(record.purpose, "Ukjent"),
        outcome=outcome,
        refused=refused,
        emergency=record.emergency,
        emergency_reason=EMERGENCY_REASON.get(record.emergency_reason, ""),
    )


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
    #: Per lane, the organisations it stands for, by name.
    who: list[tuple[str, str]] = field(default_factory=list)


LEFT, RIGHT, TOP, LANE_HEIGHT = 110, 20, 30, 56


def picture(
    reply: pathway_pb2.Pathway, now: datetime, window_days: int | None = None, width: int = 1000
) -> Picture:
    """Lanes for municipality, GP and hospital over the span of the pathway: stays as bars in
    the hospital lane, the utskrivningsklar waiting period as a bar in the municipality lane (it
    pays), each message as a mark in its sender's lane coloured by its receipt, other events as
    dots, and each open deadline as a marker in the lane of the organisation it waits on, red
    when breached. With `window_days`, only that many days up to the latest event are drawn.
    Organisations are named as the reply's directory entries name them."""
    names = Directory.of(reply.organisations)
    lane_y = {kind: TOP + i * LANE_HEIGHT + LANE_HEIGHT / 2 for i, (kind, _) in enumerate(LANES)}
    pic = Picture(width=width, height=int(TOP + len(LANES) * LANE_HEIGHT + 10), left=LEFT)
    pic.lanes = [(lane_y[kind], name) for kind, name in LANES]
    pic.who = lane_organisations(reply, names)
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

    hospital, municipality = lane_y[HOSPITAL], lane_y[MUNICIPALITY]
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
                title=f"Innlagt {when(stay.admitted_at)}, {stay.ward}, "
                f"{names.name(stay.hospital_her_id, HOSPITAL)}; {closed}",
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
                f"kommunal betaling, {amount}"
                + (
                    f", betales av {names.name(period.municipality_her_id, MUNICIPALITY)}"
                    if period.municipality_her_id
                    else ""
                ),
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
                    f"{message.name} til {names.organisation(message.to)}, "
                    f"{when(message.sent_at)}: "
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
                f"{names.organisation(task.waiting_on, in_text=True)}",
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
