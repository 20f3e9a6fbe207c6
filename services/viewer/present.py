"""What the viewer shows, in Norwegian bokmål and Oslo time: labels for the API's enums, dates
and amounts the Norwegian way, organisations by the names the directory gives them, and the access
log in plain words for the citizen. The pathway picture's geometry is services/viewer/picture.py.

Pure functions over the PathwayService and AccessService replies; the templates only place what
these return.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from carepath.v1 import (
    common_pb2,
    medications_pb2,
    municipal_pb2,
    pathway_pb2,
    referrals_pb2,
    registry_pb2,
)
from services.pathway.folding.summaries import CANCER_END_REASON_NAMES, CANCER_MILESTONE_NAMES
from shared.ids import IdentifierError, NationalId
from shared.times import OSLO

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
    pathway_pb2.LOCATION_KIND_IN_REHABILITATION: "Rehabiliteringsopphold",
    pathway_pb2.LOCATION_KIND_DECEASED: "Død",
}
#: The municipal services, in Norwegian.
SERVICE = {
    municipal_pb2.MUNICIPAL_SERVICE_KIND_HOME_NURSING: "Hjemmesykepleie",
    municipal_pb2.MUNICIPAL_SERVICE_KIND_PRACTICAL_ASSISTANCE: "Praktisk bistand",
    municipal_pb2.MUNICIPAL_SERVICE_KIND_SHORT_TERM_STAY: "Korttidsopphold",
    municipal_pb2.MUNICIPAL_SERVICE_KIND_LONG_TERM_STAY: "Langtidsopphold",
    municipal_pb2.MUNICIPAL_SERVICE_KIND_REHABILITATION: "Rehabiliteringsopphold",
    municipal_pb2.MUNICIPAL_SERVICE_KIND_DAY_ACTIVITY: "Dagtilbud",
}
SERVICE_STATE = {
    municipal_pb2.MUNICIPAL_SERVICE_STATE_DECIDED: "Vedtatt, ikke startet",
    municipal_pb2.MUNICIPAL_SERVICE_STATE_STARTED: "Pågår",
    municipal_pb2.MUNICIPAL_SERVICE_STATE_ENDED: "Avsluttet",
}
SERVICE_END = {
    municipal_pb2.SERVICE_END_REASON_NO_LONGER_NEEDED: "ikke lenger behov",
    municipal_pb2.SERVICE_END_REASON_REPLACED: "erstattet av annen tjeneste",
    municipal_pb2.SERVICE_END_REASON_PATIENT_DECLINED: "pasienten takket nei",
    municipal_pb2.SERVICE_END_REASON_MOVED: "pasienten flyttet",
    municipal_pb2.SERVICE_END_REASON_PATIENT_DIED: "pasienten døde",
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
#: Why a cancer pathway ended without treatment, keyed by the API's enum.
CANCER_END_REASON = {
    referrals_pb2.CancerPathwayEndReason.Value(f"CANCER_PATHWAY_END_REASON_{name}"): text
    for name, text in CANCER_END_REASON_NAMES.items()
}


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
    "PathwayService/ExportFhir": "Hentet pasientforløpet ditt som FHIR-eksport",
    "PathwayService/ListPathways": "Så deg på kommunens arbeidsliste",
    "PathwayService/WatchPathway": "Fulgte med på endringer i forløpet ditt",
    "PathwayService/Statistics": "Så kommunens styringstall (ingen enkeltpersoner er navngitt)",
    "PathwayService/ListCancerPathwayShares": "Telte sykehusets pakkeforløp (uten navn)",
    "ReferralService/SendReferral": "Sendte en henvisning",
    "ReferralService/RecordReferralReceipt": "Kvitterte for en henvisning",
    "ReferralService/AcceptReferral": "Vurderte en henvisning og ga deg rett til helsehjelp",
    "ReferralService/RejectReferral": "Vurderte og avslo en henvisning",
    "ReferralService/ForwardReferral": "Sendte en henvisning videre",
    "ReferralService/CompleteReferral": "Avsluttet en henvisning",
    "ReferralService/RecordCancerPathwayMilestone": "Registrerte et steg i pakkeforløpet",
    "ReferralService/EndCancerPathway": "Avsluttet pakkeforløpet uten behandling",
    "ReferralService/ResendReferral": "Rettet og sendte en avvist henvisning på nytt",
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
    "CorrespondenceService/SendMessage": "Sendte en melding om deg mellom kommunen og fastlegen",
    "CorrespondenceService/AnswerRequest": "Svarte på en forespørsel om deg",
    "CorrespondenceService/RecordMessageReceipt": "Kvitterte for en melding om deg",
    "CorrespondenceService/GetCorrespondence": "Så meldinger om deg mellom kommunen og fastlegen",
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
    "RegistryService/RecordDeath": "Registrerte dødsfallet",
    "MunicipalService/DecideService": "Fattet vedtak om en kommunal tjeneste til deg",
    "MunicipalService/StartService": "Startet en kommunal tjeneste til deg",
    "MunicipalService/EndService": "Avsluttet en kommunal tjeneste til deg",
    "MunicipalService/GetService": "Så en kommunal tjeneste til deg",
    "AccessService/BlockAccess": "Sperret tilgang til opplysningene dine",
    "AccessService/LiftBlock": "Opphevet en sperring",
    "AccessService/GetBlocks": "Så sperringene dine",
    "AccessService/RequestEmergencyAccess": "Ba om akuttilgang til opplysningene dine",
    "AccessService/ListEmergencyAccesses": "Kontrollerte en akuttilgang til opplysningene dine",
    "AccessService/ListAccesses": "Så hvem som har sett på opplysningene dine",
    "SubscriptionAdminService/CreateSubscription": "Opprettet et abonnement for et fagsystem",
    "SubscriptionAdminService/ListSubscriptions": "Så abonnementene for fagsystemer",
    "SubscriptionAdminService/PauseSubscription": "Stanset et abonnement for et fagsystem",
    "SubscriptionAdminService/ResumeSubscription": "Startet et abonnement for et fagsystem igjen",
    "SubscriptionAdminService/DeleteSubscription": "Slettet et abonnement for et fagsystem",
    "EventStreamService/Subscribe": "Åpnet en hendelsesstrøm for et fagsystem",
}
#: A vendor subscription's delivery of an event about the citizen (services/streams): the call
#: is `VendorDelivery/<subscription>`, the organisation the one whose system received it.
VENDOR_DELIVERY = "VendorDelivery/"
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
    common_pb2.ACCESS_BASIS_OPERATOR: "Driften av carepath",
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
    common_pb2.ACCESS_PURPOSE_SERVICE_PLANNING: "Planlegging av tjenester (uten å vite hvem du er)",
    common_pb2.ACCESS_PURPOSE_STATISTICS: "Styringstall for kommunen (uten å vite hvem du er)",
    common_pb2.ACCESS_PURPOSE_QUALITY_IMPROVEMENT: "Kvalitetsforbedring (tall uten navn)",
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
    "DELIVERED": ("Fikk tilsendt", False),
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
        what=(
            f"Fagsystemet fikk tilsendt en hendelse om deg (abonnement "
            f"{record.call.removeprefix(VENDOR_DELIVERY)})"
            if record.call.startswith(VENDOR_DELIVERY)
            else CALL.get(record.call, record.call)
        ),
        basis=BASIS.get(record.basis, "Ukjent"),
        purpose=PURPOSE.get(record.purpose, "Ukjent"),
        outcome=outcome,
        refused=refused,
        emergency=record.emergency,
        emergency_reason=EMERGENCY_REASON.get(record.emergency_reason, ""),
    )


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
