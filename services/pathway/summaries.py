"""Norwegian one-line summaries of events for the pathway timeline."""

from __future__ import annotations

from typing import Any

from shared.envelope import Envelope

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

LEVEL_NAMES = {"MUNICIPALITY": "kommunen", "GP": "fastlegen", "HOSPITAL": "sykehuset"}


class Summariser:
    """Short Norwegian lines for people, one per event, in clinical order (it remembers
    medication names so later changes can name the medication). Never clinical free text:
    reasons stay in the event data."""

    def __init__(self) -> None:
        self._medications: dict[str, str] = {}

    def __call__(self, envelope: Envelope) -> str:
        data = envelope.data
        if envelope.source == "medications":
            return self._medication(envelope.event_type, data)
        return _summary(envelope.event_type, data, envelope.actor)

    def _medication(self, event_type: str, data: dict[str, Any]) -> str:
        if event_type == "MedicationPrescribed":
            name = f"{data['medication']['name']} ({data['medication']['atc_code']})"
            self._medications[data["entry_id"]] = name
            return f"Legemiddel forskrevet: {name}, {data['dose']}"
        name = self._medications.get(str(data.get("entry_id")), "legemiddel")
        match event_type:
            case "MedicationListStarted":
                return "Felles legemiddelliste opprettet"
            case "MedicationDoseChanged":
                return f"Dosering endret for {name}: {data['dose']}"
            case "MedicationPaused":
                return f"{name} midlertidig stanset"
            case "MedicationResumed":
                return f"{name} gjenopptatt"
            case "MedicationDiscontinued":
                return f"{name} seponert"
            case "MedicationListReconciled":
                sources = ", ".join(SOURCE_NAMES.get(s, s) for s in data.get("sources", []))
                return f"Legemiddellisten samstemt (kilder: {sources})"
        return event_type


def _summary(event_type: str, data: dict[str, Any], actor: dict[str, str]) -> str:
    match event_type:
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
        case "CancerPathwayMilestoneReached":
            line = f"Pakkeforløp: {CANCER_MILESTONE_NAMES[data['milestone']]}"
            treatment = TREATMENT_NAMES.get(data.get("treatment") or "")
            return f"{line} ({treatment})" if treatment else line
        case "PatientAdmitted":
            how = "akutt" if data["admission_type"] == "ACUTE" else "planlagt"
            return f"Innlagt {how} på sykehus {data['hospital_her_id']}, {data['ward']}"
        case "AdmissionNoticeSent":
            return f"Melding om innlagt pasient sendt til kommune {data['to_her_id']}"
        case "AdmissionReportReceived":
            return f"Innleggelsesrapport sendt fra kommunen til sykehus {data['to_her_id']}"
        case "HealthInformationSent":
            first = "" if data.get("first") else " (oppdatering)"
            return f"Helseopplysninger sendt til kommune {data['to_her_id']}{first}"
        case "MessageReceiptRecorded":
            return f"Applikasjonskvittering {data['status']} registrert"
        case "PatientTransferred":
            return f"Overflyttet til sykehus {data['to_hospital_her_id']}, {data['to_ward']}"
        case "StayClosed":
            return "Sykehusoppholdet avsluttet: utskrevet"
        case "PatientDeclaredReadyForDischarge":
            return f"Pasienten meldt utskrivningsklar til kommune {data['municipality_her_id']}"
        case "MunicipalityAnsweredReadiness":
            if data.get("can_receive"):
                return f"Kommunen kan ta imot pasienten {data.get('receive_on')}"
            return "Kommunen kan ikke ta imot pasienten ennå"
        case "ReadinessWithdrawn":
            return "Avmelding: pasienten trenger mer sykehusbehandling"
        case "PatientDischarged":
            where = DESTINATION_NAMES.get(data["destination"], data["destination"])
            return f"Utskrevet til {where}"
        case "EpicrisisSent":
            return f"Epikrise sendt til {data['to_her_id']}"
        case _:
            who = LEVEL_NAMES.get(actor.get("org_kind", ""), "ukjent")
            return f"{event_type} ({who})"
