"""The access table: one rule for every call of every service (default deny: a call without a
rule is refused). The interceptor (shared/grpc_server.py) applies it, the authorization-matrix
tests are generated from it, and docs/access.md is printed from it (`make docs`).

Reading the columns: `callers` are the kinds of caller the call is for; `bases` are the grounds
any one of which must hold for the patient (in this order; the first found is recorded);
`person` means a care organisation's token must name the health professional (HPR-number) —
reads by a named system role excepted; `blockable` means the patient's block of the caller
refuses the call.
"""

from __future__ import annotations

from shared.access.model import OPERATOR_ROLE
from shared.access.model import Basis as B
from shared.access.model import Purpose as P
from shared.access.policy import Action, Rule, Target
from shared.actors import OrgKind

GP, HOSPITAL, MUNICIPALITY = OrgKind.GP, OrgKind.HOSPITAL, OrgKind.MUNICIPALITY
REGISTRY, CITIZEN = OrgKind.REGISTRY, OrgKind.CITIZEN
CARE = frozenset({GP, HOSPITAL, MUNICIPALITY})
READ, WRITE = Action.READ, Action.WRITE

#: Who may read a patient's clinical data, in the order the basis is recorded.
CLINICAL_READERS = (
    B.FASTLEGE,
    B.REFERRAL_SENDER,
    B.RESIDENCE_MUNICIPALITY,
    B.TEMPORARY_RESIDENCE_MUNICIPALITY,
    B.MESSAGE_RECEIVER,
    B.REFERRAL_RECEIVER,
    B.STAY_HOSPITAL,
)
#: Who may prescribe and change the shared medication list: the doctors caring for the patient
#: now (the fastlege, the hospital of a stay or of an open referral, a municipal doctor of the
#: municipality the patient lives or stays in).
PRESCRIBERS = (
    B.FASTLEGE,
    B.STAY_HOSPITAL,
    B.REFERRAL_RECEIVER,
    B.RESIDENCE_MUNICIPALITY,
    B.TEMPORARY_RESIDENCE_MUNICIPALITY,
)
HOME_MUNICIPALITY = (
    B.RESIDENCE_MUNICIPALITY,
    B.TEMPORARY_RESIDENCE_MUNICIPALITY,
    B.MESSAGE_RECEIVER,
)

PATIENT = Target.patient()
REFERRAL = Target.resource_of("referral", "referral_id")
STAY = Target.resource_of("stay", "stay_id")
DISCHARGE = Target.resource_of("discharge", "stay_id")
MUNICIPAL_SERVICE = Target.resource_of("municipal_service", "service_id")
#: Who may decide, start and end a municipal service: the municipality the patient lives or
#: stays in now, by the registers (never a municipality merely sent a message).
SERVICE_MUNICIPALITY = (B.RESIDENCE_MUNICIPALITY, B.TEMPORARY_RESIDENCE_MUNICIPALITY)
#: Who may record a patient's death: a hospital with the patient's stay, the municipality the
#: patient lives or stays in, the register adapter (Folkeregisteret).
DEATH_RECORDERS = (
    B.STAY_HOSPITAL,
    B.RESIDENCE_MUNICIPALITY,
    B.TEMPORARY_RESIDENCE_MUNICIPALITY,
    B.REGISTER_KEEPER,
)
CORRESPONDENCE = Target.resource_of("correspondence", "correspondence_id")
#: Who may write to the other level about a patient: the fastlege, and a municipality the
#: patient stays or lives in (the receiver is the registers' too: services/correspondence).
CORRESPONDENTS = (B.FASTLEGE, B.TEMPORARY_RESIDENCE_MUNICIPALITY, B.RESIDENCE_MUNICIPALITY)


def _rules() -> list[Rule]:
    def rule(
        service: str,
        method: str,
        action: Action,
        callers: frozenset[OrgKind] | set[OrgKind],
        bases: tuple[B, ...],
        target: Target,
        summary: str,
        *,
        person: bool = False,
        blockable: bool | None = None,
        purpose: P = P.HEALTH_CARE,
        purpose_required: bool = False,
        roles: frozenset[str] = frozenset(),
        opens_emergency: bool = False,
    ) -> Rule:
        return Rule(
            service=service,
            method=method,
            action=action,
            callers=frozenset(callers),
            bases=bases,
            target=target,
            person=person,
            blockable=action is READ if blockable is None else blockable,
            purpose=purpose,
            purpose_required=purpose_required,
            roles=roles,
            opens_emergency=opens_emergency,
            summary=summary,
        )

    referrals, admissions = "ReferralService", "AdmissionService"
    discharges, medications = "DischargeService", "MedicationService"
    pathway, registry, access = "PathwayService", "RegistryService", "AccessService"
    streams = "SubscriptionAdminService"
    municipal = "MunicipalService"
    correspondence = "CorrespondenceService"
    clinical_read = (*CLINICAL_READERS, B.EMERGENCY)
    return [
        # --- referrals -----------------------------------------------------------------------
        rule(referrals, "SendReferral", WRITE, {GP}, (B.FASTLEGE,), PATIENT,
             "the patient's fastlege refers", person=True),
        rule(referrals, "RecordReferralReceipt", WRITE, {HOSPITAL}, (B.REFERRAL_RECEIVER,),
             REFERRAL, "the receiving hospital's system answers the referral message"),
        rule(referrals, "AcceptReferral", WRITE, {HOSPITAL}, (B.REFERRAL_RECEIVER,), REFERRAL,
             "a doctor of the receiving hospital assesses", person=True),
        rule(referrals, "RejectReferral", WRITE, {HOSPITAL}, (B.REFERRAL_RECEIVER,), REFERRAL,
             "a doctor of the receiving hospital assesses", person=True),
        rule(referrals, "ForwardReferral", WRITE, {HOSPITAL}, (B.REFERRAL_RECEIVER,), REFERRAL,
             "a doctor of the receiving hospital forwards", person=True),
        rule(referrals, "CompleteReferral", WRITE, {HOSPITAL}, (B.REFERRAL_RECEIVER,), REFERRAL,
             "the receiving hospital records the referred care given"),
        rule(referrals, "RecordCancerPathwayMilestone", WRITE, {HOSPITAL},
             (B.REFERRAL_RECEIVER,), REFERRAL,
             "the receiving hospital records a cancer-pathway milestone"),
        rule(referrals, "EndCancerPathway", WRITE, {HOSPITAL}, (B.REFERRAL_RECEIVER,),
             REFERRAL, "a doctor of the receiving hospital ends the cancer pathway without "
             "treatment", person=True),
        rule(referrals, "ResendReferral", WRITE, {GP}, (B.REFERRAL_SENDER,), REFERRAL,
             "the referring GP office corrects and resends a referral whose receipt was "
             "rejected", person=True),
        rule(referrals, "CancelReferral", WRITE, {GP}, (B.REFERRAL_SENDER,), REFERRAL,
             "the referring GP office withdraws"),
        rule(referrals, "GetReferral", READ, CARE, clinical_read, REFERRAL,
             "the referral's sender and receiver; whoever cares for the patient", person=True),
        # --- admissions ----------------------------------------------------------------------
        rule(admissions, "AdmitPatient", WRITE, {HOSPITAL}, (B.ADMITTING_HOSPITAL,), PATIENT,
             "any hospital admits a patient who has come to it (the stay starts its "
             "relationship)"),
        rule(admissions, "SendAdmissionNotice", WRITE, {HOSPITAL}, (B.STAY_HOSPITAL,), STAY,
             "the hospital of the stay"),
        rule(admissions, "RecordAdmissionReport", WRITE, {MUNICIPALITY}, HOME_MUNICIPALITY,
             STAY, "the municipality the patient lives or stays in, or was sent a message"),
        rule(admissions, "SendHealthInformation", WRITE, {HOSPITAL}, (B.STAY_HOSPITAL,), STAY,
             "the hospital of the stay"),
        rule(admissions, "RecordMessageReceipt", WRITE, {HOSPITAL, MUNICIPALITY},
             (B.RECEIPT_DUE,), STAY, "the receiver of a message of the stay"),
        rule(admissions, "TransferPatient", WRITE, {HOSPITAL}, (B.STAY_HOSPITAL,), STAY,
             "the hospital of the stay"),
        rule(admissions, "CloseStay", WRITE, {HOSPITAL}, (B.STAY_HOSPITAL,), STAY,
             "the hospital of the stay"),
        rule(admissions, "GetStay", READ, CARE, clinical_read, STAY,
             "whoever cares for the patient", person=True),
        rule(admissions, "ListStays", READ, CARE, clinical_read, PATIENT,
             "whoever cares for the patient", person=True),
        # --- discharges ----------------------------------------------------------------------
        rule(discharges, "DeclareReadyForDischarge", WRITE, {HOSPITAL}, (B.STAY_HOSPITAL,),
             DISCHARGE, "a doctor of the hospital of the stay", person=True),
        rule(discharges, "AnswerReadiness", WRITE, {MUNICIPALITY}, HOME_MUNICIPALITY,
             DISCHARGE, "the municipality the patient lives or stays in, or was notified"),
        rule(discharges, "WithdrawReadiness", WRITE, {HOSPITAL}, (B.STAY_HOSPITAL,), DISCHARGE,
             "the hospital of the stay", person=True),
        rule(discharges, "DischargePatient", WRITE, {HOSPITAL}, (B.STAY_HOSPITAL,), DISCHARGE,
             "the hospital of the stay"),
        rule(discharges, "SendEpicrisis", WRITE, {HOSPITAL}, (B.STAY_HOSPITAL,), DISCHARGE,
             "the hospital of the stay"),
        rule(discharges, "RecordMessageReceipt", WRITE, {GP, HOSPITAL, MUNICIPALITY},
             (B.RECEIPT_DUE,), DISCHARGE, "the receiver of a message of the discharge"),
        rule(discharges, "GetDischarge", READ, CARE, clinical_read, DISCHARGE,
             "whoever cares for the patient", person=True),
        # --- correspondence between municipality and GP -------------------------------------
        rule(correspondence, "SendMessage", WRITE, {GP, MUNICIPALITY}, CORRESPONDENTS, PATIENT,
             "the patient's fastlege; a municipality the patient stays or lives in (each writes "
             "to the other as the registers name it)", person=True),
        rule(correspondence, "AnswerRequest", WRITE, {GP, MUNICIPALITY}, (B.MESSAGE_RECEIVER,),
             CORRESPONDENCE, "the receiver of the Forespørsel", person=True),
        rule(correspondence, "RecordMessageReceipt", WRITE, {GP, MUNICIPALITY},
             (B.RECEIPT_DUE,), CORRESPONDENCE,
             "the receiver of a message of the correspondence"),
        rule(correspondence, "GetCorrespondence", READ, CARE,
             clinical_read, CORRESPONDENCE,
             "whoever cares for the patient; the receivers of its messages", person=True),
        # --- medications ---------------------------------------------------------------------
        *(
            rule(medications, method, WRITE, CARE, PRESCRIBERS, PATIENT,
                 "a doctor caring for the patient now", person=True, blockable=True)
            for method in (
                "PrescribeMedication",
                "ChangeDose",
                "PauseMedication",
                "ResumeMedication",
                "DiscontinueMedication",
                "ReconcileMedicationList",
            )
        ),
        rule(medications, "GetMedicationList", READ, CARE, clinical_read, PATIENT,
             "whoever cares for the patient", person=True),
        # --- municipal services ------------------------------------------------------------
        rule(municipal, "DecideService", WRITE, {MUNICIPALITY}, SERVICE_MUNICIPALITY, PATIENT,
             "the municipality the patient lives or stays in decides (vedtak)"),
        rule(municipal, "StartService", WRITE, {MUNICIPALITY}, SERVICE_MUNICIPALITY,
             MUNICIPAL_SERVICE, "the deciding municipality, while the patient lives or stays "
             "there"),
        rule(municipal, "EndService", WRITE, {MUNICIPALITY}, SERVICE_MUNICIPALITY,
             MUNICIPAL_SERVICE, "the deciding municipality, while the patient lives or stays "
             "there"),
        rule(municipal, "GetService", READ, CARE, clinical_read, MUNICIPAL_SERVICE,
             "whoever cares for the patient", person=True),
        # --- pathway -------------------------------------------------------------------------
        rule(pathway, "GetPathway", READ, {*CARE, CITIZEN}, (*clinical_read, B.SELF), PATIENT,
             "whoever cares for the patient; the citizen themself", person=True,
             purpose=P.CARE_COORDINATION, purpose_required=True),
        rule(pathway, "ExportFhir", READ, {*CARE, CITIZEN}, (*clinical_read, B.SELF), PATIENT,
             "as GetPathway (it is GetPathway's answer as a FHIR Bundle)", person=True,
             purpose=P.CARE_COORDINATION, purpose_required=True),
        rule(pathway, "ListPathways", READ, {MUNICIPALITY}, (B.OWN_ORGANISATION,),
             Target.own_organisation("municipality_her_id"),
             "a municipality's worklist: the patients it has a relationship with now "
             "(residence, temporary residence, message receiver)",
             person=True, purpose=P.CARE_COORDINATION, purpose_required=True),
        rule(pathway, "Statistics", READ, {MUNICIPALITY, REGISTRY},
             (B.OWN_ORGANISATION, B.OPERATOR),
             Target.organisation("municipality_her_id", MUNICIPALITY),
             "a municipality's own monthly numbers; carepath's operators: any municipality's "
             "(aggregates, small counts suppressed: no patient is named)",
             blockable=False, purpose=P.STATISTICS),
        rule(pathway, "ListCancerPathwayShares", READ, {HOSPITAL}, (B.OWN_ORGANISATION,),
             Target.own_organisation("hospital_her_id"),
             "a hospital's own cancer-pathway figures: counts, no patient named",
             blockable=False, purpose=P.QUALITY_IMPROVEMENT, purpose_required=True),
        rule(pathway, "WatchPathway", READ, {*CARE, CITIZEN}, (*clinical_read, B.SELF),
             Target.patient_or_own_organisation("patient", "municipality_her_id"),
             "as GetPathway for one patient, as ListPathways for a municipality",
             person=True, purpose=P.CARE_COORDINATION, purpose_required=True),
        # --- registry ------------------------------------------------------------------------
        *(
            rule(registry, method, WRITE, {REGISTRY}, (B.REGISTER_KEEPER,), PATIENT,
                 "the register adapter", purpose=P.REGISTER_MAINTENANCE)
            for method in ("RecordResidence", "RecordTemporaryResidence", "AssignFastlege")
        ),
        rule(registry, "RecordDeath", WRITE, {HOSPITAL, MUNICIPALITY, REGISTRY}, DEATH_RECORDERS,
             PATIENT, "a doctor of a hospital with the patient's stay or of the municipality "
             "the patient lives or stays in; the register adapter", person=True),
        rule(registry, "RegisterOrganisation", WRITE, {REGISTRY}, (B.REGISTER_KEEPER,),
             Target.none(), "the register adapter", purpose=P.REGISTER_MAINTENANCE),
        rule(registry, "GetRegistration", READ, {REGISTRY, CITIZEN},
             (B.REGISTER_KEEPER, B.SELF), PATIENT, "the register adapter; the citizen themself",
             blockable=False, purpose=P.REGISTER_MAINTENANCE),
        rule(registry, "ListOrganisations", READ, {*CARE, REGISTRY, CITIZEN},
             (B.ORGANISATION_DIRECTORY,), Target.none(),
             "every caller: the directory holds no personal data", blockable=False),
        # --- access --------------------------------------------------------------------------
        *(
            rule(access, method, action, {CITIZEN, REGISTRY}, (B.SELF, B.REGISTER_KEEPER),
                 PATIENT, "the citizen themself, or the register adapter on their behalf",
                 blockable=False, purpose=P.ACCESS_MANAGEMENT)
            for method, action in (("BlockAccess", WRITE), ("LiftBlock", WRITE),
                                   ("GetBlocks", READ))
        ),
        rule(access, "RequestEmergencyAccess", WRITE, CARE, (B.EMERGENCY,), PATIENT,
             "a health professional without a relationship, with a coded reason",
             person=True, blockable=True, purpose=P.EMERGENCY_CARE, opens_emergency=True),
        rule(access, "ListEmergencyAccesses", READ, CARE, (B.SUPERVISOR,), Target.none(),
             "the organisation's supervisors: its own emergency accesses", blockable=False,
             roles=frozenset({"SUPERVISOR"}), purpose=P.ACCESS_REVIEW),
        rule(access, "ListAccesses", READ, {CITIZEN}, (B.SELF,), PATIENT,
             "the citizen themself: who touched their data", blockable=False,
             purpose=P.CITIZEN_INSIGHT),
        # --- vendor subscriptions (services/streams) ---------------------------------------
        *(
            rule(streams, method, action, {REGISTRY}, (B.OPERATOR,), Target.none(),
                 "carepath's operators: the vendors' subscriptions", blockable=False,
                 roles=frozenset({OPERATOR_ROLE}), purpose=P.ACCESS_MANAGEMENT)
            for method, action in (
                ("CreateSubscription", WRITE),
                ("ListSubscriptions", READ),
                ("PauseSubscription", WRITE),
                ("ResumeSubscription", WRITE),
                ("DeleteSubscription", WRITE),
            )
        ),
        # The subscription named is resolved to its vendor organisation by the streams
        # service (services/streams/stream.py, `Watcher.owner`); anyone else is refused here.
        rule("EventStreamService", "Subscribe", READ, {REGISTRY, *CARE},
             (B.OWN_ORGANISATION,), Target.owned("subscription", "subscription"),
             "the subscription's vendor organisation: its own subscription's events",
             blockable=False),
    ]  # fmt: skip


RULES: dict[str, Rule] = {f"/carepath.v1.{r.name}": r for r in _rules()}


def rule_for(method: str) -> Rule | None:
    """The rule of a full gRPC method name ("/carepath.v1.PathwayService/GetPathway")."""
    return RULES.get(method)
