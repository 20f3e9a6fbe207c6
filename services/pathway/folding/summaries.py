"""Norwegian one-line summaries of events for the pathway timeline."""

from __future__ import annotations

from shared.events import Envelope, Payload
from shared.events import admissions as adm
from shared.events import correspondence as co
from shared.events import discharges as dc
from shared.events import medications as med
from shared.events import municipal as mun
from shared.events import referrals as rf
from shared.events import registry as reg

DESTINATION_NAMES = {
    "HOME": "hjemmet",
    "HOME_WITH_SERVICES": "hjemmet med kommunale tjenester",
    "SHORT_TERM_NURSING_HOME": "korttidsplass på sykehjem",
    "LONG_TERM_NURSING_HOME": "langtidsplass på sykehjem",
    "OTHER_HOSPITAL": "annet sykehus",
}

SOURCE_NAMES = {
    "PATIENT": "pasienten",
    "NEXT_OF_KIN": "pårørende",
    "GP_RECORD": "fastlegens journal",
    "HOSPITAL_RECORD": "sykehusets journal",
    "MUNICIPAL_CARE_RECORD": "kommunens journal",
    "PRESCRIPTION_INTERMEDIARY": "reseptformidleren",
    "MULTIDOSE_PHARMACY": "multidoseapotek",
}

CANCER_PATHWAY_NAMES = {
    "BREAST": "brystkreft",
    "COLORECTAL": "tykk- og endetarmskreft",
    "LYMPHOMA": "lymfom",
}

CANCER_MILESTONE_NAMES = {
    "FIRST_APPOINTMENT": "første fremmøte",
    "INVESTIGATION_COMPLETED": "utredning avsluttet",
    "TREATMENT_START": "behandling startet",
}

TREATMENT_NAMES = {
    "SURGERY": "kirurgi",
    "DRUGS": "medikamentell behandling",
    "RADIOTHERAPY": "strålebehandling",
}

#: Norwegian names of the municipal services, for people.
SERVICE_NAMES = {
    "HOME_NURSING": "hjemmesykepleie",
    "PRACTICAL_ASSISTANCE": "praktisk bistand",
    "SHORT_TERM_STAY": "korttidsopphold",
    "LONG_TERM_STAY": "langtidsopphold",
    "REHABILITATION": "rehabiliteringsopphold",
    "DAY_ACTIVITY": "dagtilbud",
}
END_REASON_NAMES = {
    "NO_LONGER_NEEDED": "ikke lenger behov",
    "REPLACED": "erstattet av annen tjeneste",
    "PATIENT_DECLINED": "pasienten takket nei",
    "MOVED": "pasienten flyttet",
    "PATIENT_DIED": "pasienten døde",
}

#: The PLO messages between municipality and GP (shared.events.correspondence), in Norwegian.
CORRESPONDENCE_NAMES = {
    "REQUEST": "Forespørsel",
    "REQUEST_ANSWER": "Svar på forespørsel",
    "MEDICAL_INFORMATION": "Medisinske opplysninger",
    "HEALTH_INFORMATION_TO_GP": "Helseopplysninger til lege",
    "SERVICE_NOTICE": "Orientering om tjenestetilbud",
    "DIALOGUE": "Dialogmelding",
}

CANCER_END_REASON_NAMES = {
    "CANCER_NOT_CONFIRMED": "kreft ikke påvist",
    "PATIENT_DECLINED": "pasienten ønsker ikke videre utredning eller behandling",
    "PATIENT_DIED": "pasienten døde",
    "OTHER": "annen grunn",
}

LEVEL_NAMES = {"MUNICIPALITY": "kommunen", "GP": "fastlegen", "HOSPITAL": "sykehuset"}


class Summariser:
    """Short Norwegian lines for people, one per event, in clinical order (it remembers
    medication names so later changes can name the medication). Never clinical free text:
    reasons stay in the event data."""

    def __init__(self, medications: dict[str, str] | None = None) -> None:
        #: Entry id → the medication's name; the fold keeps it between batches.
        self._medications = {} if medications is None else medications

    def __call__(self, envelope: Envelope) -> str:
        if isinstance(envelope.data, med.MedicationListEvent):
            return self._medication(envelope.data)
        return _summary(envelope.data, envelope.actor)

    def _medication(self, data: Payload) -> str:
        if isinstance(data, med.MedicationPrescribed):
            name = f"{data.medication.name} ({data.medication.atc_code})"
            self._medications[data.entry_id] = name
            return f"Legemiddel forskrevet: {name}, {data.dose}"
        name = self._medications.get(getattr(data, "entry_id", ""), "legemiddel")
        match data:
            case med.MedicationListStarted():
                return "Felles legemiddelliste opprettet"
            case med.MedicationDoseChanged(dose=dose):
                return f"Dosering endret for {name}: {dose}"
            case med.MedicationPaused():
                return f"{name} midlertidig stanset"
            case med.MedicationResumed():
                return f"{name} gjenopptatt"
            case med.MedicationDiscontinued():
                return f"{name} seponert"
            case med.MedicationListReconciled(sources=sources):
                consulted = ", ".join(SOURCE_NAMES.get(s, s) for s in sources)
                return f"Legemiddellisten samstemt (kilder: {consulted})"
        return data.event_type()


RECEIPT_STATUS_NAMES = {
    "OK": "mottatt",
    "OK_ERROR_IN_PART": "mottatt med feil i deler",
    "REJECTED": "avvist ved mottak",
}


def _summary(data: Payload, actor: dict[str, str]) -> str:
    match data:
        case rf.ReferralSent() as sent:
            pathway = CANCER_PATHWAY_NAMES.get(sent.cancer_pathway or "", "")
            urgency = "hastehenvisning" if sent.priority == "URGENT" else "henvisning"
            suffix = f", pakkeforløp {pathway}" if pathway else ""
            return f"Fastlegen sendte {urgency} til sykehus {sent.receiver_her_id}{suffix}"
        case rf.ReferralReceiptRecorded(status=status):
            return f"Henvisning {RECEIPT_STATUS_NAMES[status]} (applikasjonskvittering {status})"
        case rf.ReferralAccepted(planned_date=planned):
            return f"Henvisning vurdert: rett til helsehjelp, planlagt {planned}"
        case rf.ReferralRejected():
            return "Henvisning vurdert: avslått"
        case rf.ReferralForwarded(to_her_id=to_her_id):
            return f"Henvisning videresendt til sykehus {to_her_id}"
        case rf.ReferralCompleted():
            return "Henvisning avsluttet: helsehjelpen er gitt"
        case rf.ReferralCancelled():
            return "Henvisning trukket tilbake av fastlegen"
        case rf.CancerPathwayMilestoneReached(milestone=milestone, treatment=treatment):
            line = f"Pakkeforløp: {CANCER_MILESTONE_NAMES[milestone]}"
            cure = TREATMENT_NAMES.get(treatment or "")
            return f"{line} ({cure})" if cure else line
        case rf.CancerPathwayEnded(reason=reason):
            return f"Pakkeforløp avsluttet uten behandling: {CANCER_END_REASON_NAMES[reason]}"
        case rf.ReferralResent(receiver_her_id=receiver):
            return f"Fastlegen rettet henvisningen og sendte den på nytt til sykehus {receiver}"
        case adm.PatientAdmitted() as admitted:
            how = "akutt" if admitted.admission_type == "ACUTE" else "planlagt"
            return f"Innlagt {how} på sykehus {admitted.hospital_her_id}, {admitted.ward}"
        case adm.AdmissionNoticeSent(to_her_id=to_her_id):
            return f"Melding om innlagt pasient sendt til kommune {to_her_id}"
        case adm.AdmissionReportReceived(to_her_id=to_her_id):
            return f"Innleggelsesrapport sendt fra kommunen til sykehus {to_her_id}"
        case adm.HealthInformationSent(to_her_id=to_her_id, first=first):
            update = "" if first else " (oppdatering)"
            return f"Helseopplysninger sendt til kommune {to_her_id}{update}"
        case co.CorrespondenceMessageSent(message_type=kind, from_kind=sender):
            whom = "fastlegen" if sender == "MUNICIPALITY" else "kommunen"
            who = LEVEL_NAMES.get(sender, "ukjent").capitalize()
            return f"{who} sendte {CORRESPONDENCE_NAMES[kind].lower()} til {whom}"
        case co.CorrespondenceRequestAnswered(message_type=kind, to_kind=asker):
            who = "Fastlegen" if asker == "MUNICIPALITY" else "Kommunen"
            return f"{who} svarte på forespørselen: {CORRESPONDENCE_NAMES[kind].lower()}"
        case (
            adm.MessageReceiptRecorded(status=status)
            | dc.MessageReceiptRecorded(status=status)
            | co.MessageReceiptRecorded(status=status)
        ):
            return f"Applikasjonskvittering {status} registrert"
        case adm.PatientTransferred(to_hospital_her_id=hospital, to_ward=ward):
            return f"Overflyttet til sykehus {hospital}, {ward}"
        case adm.StayClosed():
            return "Sykehusoppholdet avsluttet: utskrevet"
        case dc.PatientDeclaredReadyForDischarge(municipality_her_id=municipality):
            return f"Pasienten meldt utskrivningsklar til kommune {municipality}"
        case dc.MunicipalityAnsweredReadiness(can_receive=True, receive_on=receive_on):
            return f"Kommunen kan ta imot pasienten {receive_on}"
        case dc.MunicipalityAnsweredReadiness():
            return "Kommunen kan ikke ta imot pasienten ennå"
        case dc.ReadinessWithdrawn():
            return "Avmelding: pasienten trenger mer sykehusbehandling"
        case dc.PatientDischarged(destination=destination):
            return f"Utskrevet til {DESTINATION_NAMES.get(destination, destination)}"
        case dc.EpicrisisSent(to_her_id=to_her_id):
            return f"Epikrise sendt til {to_her_id}"
        case mun.MunicipalServiceDecided(kind=kind, starts_on=starts_on):
            return f"Kommunen fattet vedtak om {SERVICE_NAMES[kind]} fra {starts_on}"
        case mun.MunicipalServiceStarted():
            return "Kommunal tjeneste startet"
        case mun.MunicipalServiceEnded(reason=reason, started=started):
            what = "avsluttet" if started else "vedtak trukket tilbake"
            return f"Kommunal tjeneste {what}: {END_REASON_NAMES[reason]}"
        case reg.PatientDied():
            return "Pasienten døde"
        case _:
            who = LEVEL_NAMES.get(actor.get("org_kind", ""), "ukjent")
            return f"{data.event_type()} ({who})"
