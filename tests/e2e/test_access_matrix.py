"""The authorization matrix: every call of every service (shared/access/table.py) made by
every kind of caller that matters, on the real servers — every gRPC server, outbox relay and
the pathway projector over loopback, the real RabbitMQ, SQLite stores — one call per cell.

Each cell is a small clinical story about a patient of its own (so cells never disturb each
other), told before any cell runs: the registers name the fastlege and the municipality, the GP
office refers, the hospital admits and sends its messages, the patient blocks someone, a
doctor breaks the glass. Then the cell makes its one call and checks the answer against the
literal table `EXPECTED` below, written by hand from docs/access.md — never computed by the
policy, which would only test the policy against itself.

The situations of a call (`situations_of`):
- one per ground the call lists (e.g. `FASTLEGE`: the caller's GP office is the patient's
  fastlege; `MESSAGE_RECEIVER`: a municipality that is not the patient's residence was sent the
  admission notice of an open stay). EMERGENCY and SELF are the `emergency` and `citizen-self`
  situations below rather than cells of their own (they would be the same story twice);
- `unrelated`: a health professional of an organisation of the kind the call is for, with no
  relationship to the patient (a care organisation when the call is for none — a register or
  citizen call); for a municipality's worklist, the list of the patient's municipality;
- `expired`: the first care relationship the call lists, ended (the fastlege assignment ran
  out, the patient moved, the stay closed more than 30 days ago, the referral was forwarded to
  another hospital, the receipt is recorded — the message itself then refuses a second one).
  Not a cell for calls without a care relationship among their grounds (AdmitPatient, the
  register and access calls, ListPathways);
- `blocked`: the caller holds the first ground of the call, and the patient has blocked the
  caller's organisation. Not a cell where that ground is SELF: a block names an organisation or
  a health professional, never a citizen acting for themself;
- `emergency`: a health professional without a relationship who has requested emergency access
  (akuttilgang) to the patient first;
- `citizen-self` and `citizen-other`: a CITIZEN token for the patient, and for someone else;
- `no-role`: for a call that needs a token role, a caller of the kind and organisation the
  call is for whose token lacks it (a doctor of the supervisor's hospital; carepath's own
  REGISTRY organisation as the register adapter, not an operator).

A refused call is told the same generic words whatever the reason (REFUSAL); a granted call
about a patient is on the audit log with the ground its cell is named after.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.message import Message

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    correspondence_pb2,
    correspondence_pb2_grpc,
    discharges_pb2,
    discharges_pb2_grpc,
    medications_pb2,
    medications_pb2_grpc,
    municipal_pb2,
    municipal_pb2_grpc,
    pathway_pb2,
    pathway_pb2_grpc,
    referrals_pb2,
    referrals_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    streams_pb2,
    streams_pb2_grpc,
)
from services.bootstrap import STREAMS
from services.discharges.application import DischargesApplication
from services.medications.application import MedicationsApplication
from services.medications.domain import ReconciliationSource
from services.municipal.application import MunicipalApplication
from services.municipal.domain import ServiceKind
from services.pathway import readmodel
from shared.access.enforce import REFUSAL
from shared.access.model import OPERATOR_ROLE, RELATIONSHIPS, Basis, organisations, relationships
from shared.access.model import blocks as access_blocks
from shared.access.policy import Rule, TargetKind
from shared.access.table import RULES
from shared.actors import Actor, OrgKind
from shared.broker import Tenant
from shared.domain import CommandContext
from shared.grpc_server import Server
from shared.ids import FNR_SYSTEM
from shared.times import OSLO
from tests import support
from tests.conftest import (
    GP,
    HOSPITAL,
    MUNICIPALITY,
    OTHER_GP,
    OTHER_HOSPITAL,
    OTHER_MUNICIPALITY,
    STORES,
)
from tests.support import (
    REGISTER_ADAPTER,
    Harness,
    auth,
    drain_queue,
    make_fnr,
    projector_queue,
    running_system,
    streams_server,
    wait_for,
)

OK = grpc.StatusCode.OK
DENIED = grpc.StatusCode.PERMISSION_DENIED
FAILED = grpc.StatusCode.FAILED_PRECONDITION

# --- who is who -----------------------------------------------------------------------------
# GP is the patient's fastlege office (OTHER_GP the one before or after it); HOSPITAL is where
# the patient is admitted; RECEIVING_HOSPITAL receives the GP's referrals and may forward them
# to FORWARD_HOSPITAL; MUNICIPALITY is where the patient lives, OTHER_MUNICIPALITY where they
# stay for a while, move to, or are sent a message as.
RECEIVING_HOSPITAL = OTHER_HOSPITAL
FORWARD_HOSPITAL = Actor(her_id="90345", org_kind=OrgKind.HOSPITAL, hpr="5632201")
#: Health professionals of organisations with no relationship to any patient here.
STRANGERS = {
    OrgKind.GP: Actor(her_id="8134555", org_kind=OrgKind.GP, hpr="7755111"),
    OrgKind.HOSPITAL: Actor(her_id="91876", org_kind=OrgKind.HOSPITAL, hpr="5632222"),
    OrgKind.MUNICIPALITY: Actor(her_id="4602", org_kind=OrgKind.MUNICIPALITY, hpr="1203333"),
}
#: Doctors who break the glass: a GP on call, the emergency department, the municipal
#: emergency clinic (legevakt). None of their organisations knows the patients otherwise.
EMERGENCY_DOCTORS = {
    OrgKind.GP: Actor(her_id="8134666", org_kind=OrgKind.GP, hpr="7755444"),
    OrgKind.HOSPITAL: Actor(her_id="91999", org_kind=OrgKind.HOSPITAL, hpr="5632555"),
    OrgKind.MUNICIPALITY: Actor(her_id="4603", org_kind=OrgKind.MUNICIPALITY, hpr="1203666"),
}
#: The emergency department's supervisor, who reviews its emergency accesses.
SUPERVISOR = Actor(
    her_id="91999", org_kind=OrgKind.HOSPITAL, hpr="5632777", roles=frozenset({"SUPERVISOR"})
)
#: One of carepath's operators: its own operating organisation (the register adapter's, kind
#: REGISTRY) with the token role OPERATOR. The register adapter itself has no such role.
OPERATOR = Actor(
    her_id=REGISTER_ADAPTER.her_id, org_kind=OrgKind.REGISTRY, roles=frozenset({OPERATOR_ROLE})
)
#: The vendor whose subscriptions the operator manages (a REGISTRY organisation of the
#: directory, as vendors are), and the municipality its system serves (a directory entry of its
#: own, so that no other cell's organisation gains one).
VENDOR = Actor(her_id="7766101", org_kind=OrgKind.REGISTRY)
SERVED = Actor(her_id="4604", org_kind=OrgKind.MUNICIPALITY)
#: Callers that are citizens: the cell's patient, or another person.
THE_PATIENT = "the patient themself"
SOMEONE_ELSE = Actor.citizen(make_fnr(30, 6, 85, 120))

# --- the expected answer of every cell, written by hand from docs/access.md -------------------
# Notes on the cells whose answer is not the obvious one:
# - CancelReferral/expired is FAILED_PRECONDITION: a referral's sender stays a party of its own
#   referral whatever its state (the resolver's parties), so the closed referral itself refuses.
#   ResendReferral/expired likewise: an assessed (declined) referral is not one whose receipt
#   was rejected, so the referral refuses the resend.
# - ListCancerPathwayShares names no patient: a hospital reads its own counts (OWN_ORGANISATION),
#   a block does not refuse it (blocked: OK), and any other caller is refused.
#   Likewise RecordMessageReceipt/expired: a message's receiver stays its receiver (a retried
#   receipt returns the first), so a second receipt is refused by the answered message.
# - AdmitPatient lets every hospital admit (ADMITTING_HOSPITAL): the unrelated and the
#   emergency hospital doctor may, and a block does not stop a patient's admission.
# - Writes are not blockable (the patient blocks the sharing, not the care given), except the
#   medication-list commands, whose reply shows the shared list, and RequestEmergencyAccess.
# - A block never refuses a call about no patient (ListOrganisations, RegisterOrganisation,
#   ListEmergencyAccesses) nor a municipality's own worklist (ListPathways: the patient is left
#   out). GetRegistration is marked blockable, but its callers are the register adapter and
#   the citizen, neither of which a block applies to: the adapter still reads.
# - ListOrganisations is open to every authenticated caller, citizens included.
# - RequestEmergencyAccess is what a health professional without a relationship may call.
# - A call that needs a token role refuses a caller of the right kind without it (no-role):
#   a doctor of the supervisor's own hospital for ListEmergencyAccesses; the vendor itself for
#   the subscription calls.
# - The SubscriptionAdminService calls are carepath's operators' alone (OPERATOR: a REGISTRY
#   organisation whose token has the role OPERATOR). What each other caller gets, and why:
#   the vendor (no-role) is a REGISTRY organisation of the directory too, so the role is all
#   that keeps it from creating a subscription for itself, widening its own filters (pause,
#   delete and re-create) or pausing a competitor's: DENIED. The register adapter — carepath's
#   own organisation without the role — is refused likewise (tests/e2e/test_vendor_streams.py,
#   with the refusal on the audit log). A care organisation's health professional (unrelated)
#   is of the wrong kind: DENIED; breaking the glass (emergency) opens one patient's record,
#   never an administrative call: DENIED. Citizens, about themselves or anyone: DENIED. A
#   patient's block of carepath's organisation does not stop an operator (blocked: OK): the
#   calls are about no patient; what a subscription may deliver about a patient who blocked
#   its served organisation is decided per event by the delivery (services/streams).
# fmt: off
EXPECTED: dict[str, dict[str, grpc.StatusCode]] = {
    # --- referrals -------------------------------------------------------------------------
    "ReferralService/SendReferral": {
        "FASTLEGE": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "ReferralService/RecordReferralReceipt": {
        "REFERRAL_RECEIVER": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "ReferralService/AcceptReferral": {
        "REFERRAL_RECEIVER": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "ReferralService/RejectReferral": {
        "REFERRAL_RECEIVER": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "ReferralService/ForwardReferral": {
        "REFERRAL_RECEIVER": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "ReferralService/CompleteReferral": {
        "REFERRAL_RECEIVER": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "ReferralService/RecordCancerPathwayMilestone": {
        "REFERRAL_RECEIVER": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "ReferralService/EndCancerPathway": {
        "REFERRAL_RECEIVER": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "ReferralService/ResendReferral": {
        "REFERRAL_SENDER": OK,
        "unrelated": DENIED, "expired": FAILED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "ReferralService/CancelReferral": {
        "REFERRAL_SENDER": OK,
        "unrelated": DENIED, "expired": FAILED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "ReferralService/GetReferral": {
        "FASTLEGE": OK, "REFERRAL_SENDER": OK, "RESIDENCE_MUNICIPALITY": OK,
        "TEMPORARY_RESIDENCE_MUNICIPALITY": OK, "MESSAGE_RECEIVER": OK,
        "REFERRAL_RECEIVER": OK, "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": DENIED, "emergency": OK,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    # --- admissions ------------------------------------------------------------------------
    "AdmissionService/AdmitPatient": {
        "ADMITTING_HOSPITAL": OK,
        "unrelated": OK, "blocked": OK, "emergency": OK,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "AdmissionService/SendAdmissionNotice": {
        "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "AdmissionService/RecordAdmissionReport": {
        "RESIDENCE_MUNICIPALITY": OK, "TEMPORARY_RESIDENCE_MUNICIPALITY": OK,
        "MESSAGE_RECEIVER": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "AdmissionService/SendHealthInformation": {
        "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "AdmissionService/RecordMessageReceipt": {
        "RECEIPT_DUE": OK,
        "unrelated": DENIED, "expired": FAILED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "AdmissionService/TransferPatient": {
        "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "AdmissionService/CloseStay": {
        "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "AdmissionService/GetStay": {
        "FASTLEGE": OK, "REFERRAL_SENDER": OK, "RESIDENCE_MUNICIPALITY": OK,
        "TEMPORARY_RESIDENCE_MUNICIPALITY": OK, "MESSAGE_RECEIVER": OK,
        "REFERRAL_RECEIVER": OK, "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": DENIED, "emergency": OK,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "AdmissionService/ListStays": {
        "FASTLEGE": OK, "REFERRAL_SENDER": OK, "RESIDENCE_MUNICIPALITY": OK,
        "TEMPORARY_RESIDENCE_MUNICIPALITY": OK, "MESSAGE_RECEIVER": OK,
        "REFERRAL_RECEIVER": OK, "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": DENIED, "emergency": OK,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    # --- discharges ------------------------------------------------------------------------
    "DischargeService/DeclareReadyForDischarge": {
        "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "DischargeService/AnswerReadiness": {
        "RESIDENCE_MUNICIPALITY": OK, "TEMPORARY_RESIDENCE_MUNICIPALITY": OK,
        "MESSAGE_RECEIVER": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "DischargeService/WithdrawReadiness": {
        "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "DischargeService/DischargePatient": {
        "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "DischargeService/SendEpicrisis": {
        "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "DischargeService/RecordMessageReceipt": {
        "RECEIPT_DUE": OK,
        "unrelated": DENIED, "expired": FAILED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "DischargeService/GetDischarge": {
        "FASTLEGE": OK, "REFERRAL_SENDER": OK, "RESIDENCE_MUNICIPALITY": OK,
        "TEMPORARY_RESIDENCE_MUNICIPALITY": OK, "MESSAGE_RECEIVER": OK,
        "REFERRAL_RECEIVER": OK, "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": DENIED, "emergency": OK,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    # --- correspondence between municipality and GP ---------------------------------------
    "CorrespondenceService/SendMessage": {
        "FASTLEGE": OK, "TEMPORARY_RESIDENCE_MUNICIPALITY": OK, "RESIDENCE_MUNICIPALITY": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "CorrespondenceService/AnswerRequest": {
        "MESSAGE_RECEIVER": OK,
        "unrelated": DENIED, "expired": FAILED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "CorrespondenceService/RecordMessageReceipt": {
        "RECEIPT_DUE": OK,
        "unrelated": DENIED, "expired": FAILED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "CorrespondenceService/GetCorrespondence": {
        "FASTLEGE": OK, "REFERRAL_SENDER": OK, "RESIDENCE_MUNICIPALITY": OK,
        "TEMPORARY_RESIDENCE_MUNICIPALITY": OK, "MESSAGE_RECEIVER": OK,
        "REFERRAL_RECEIVER": OK, "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": DENIED, "emergency": OK,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    # --- medications -----------------------------------------------------------------------
    "MedicationService/PrescribeMedication": {
        "FASTLEGE": OK, "STAY_HOSPITAL": OK, "REFERRAL_RECEIVER": OK,
        "RESIDENCE_MUNICIPALITY": OK, "TEMPORARY_RESIDENCE_MUNICIPALITY": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": DENIED, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "MedicationService/ChangeDose": {
        "FASTLEGE": OK, "STAY_HOSPITAL": OK, "REFERRAL_RECEIVER": OK,
        "RESIDENCE_MUNICIPALITY": OK, "TEMPORARY_RESIDENCE_MUNICIPALITY": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": DENIED, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "MedicationService/PauseMedication": {
        "FASTLEGE": OK, "STAY_HOSPITAL": OK, "REFERRAL_RECEIVER": OK,
        "RESIDENCE_MUNICIPALITY": OK, "TEMPORARY_RESIDENCE_MUNICIPALITY": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": DENIED, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "MedicationService/ResumeMedication": {
        "FASTLEGE": OK, "STAY_HOSPITAL": OK, "REFERRAL_RECEIVER": OK,
        "RESIDENCE_MUNICIPALITY": OK, "TEMPORARY_RESIDENCE_MUNICIPALITY": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": DENIED, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "MedicationService/DiscontinueMedication": {
        "FASTLEGE": OK, "STAY_HOSPITAL": OK, "REFERRAL_RECEIVER": OK,
        "RESIDENCE_MUNICIPALITY": OK, "TEMPORARY_RESIDENCE_MUNICIPALITY": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": DENIED, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "MedicationService/ReconcileMedicationList": {
        "FASTLEGE": OK, "STAY_HOSPITAL": OK, "REFERRAL_RECEIVER": OK,
        "RESIDENCE_MUNICIPALITY": OK, "TEMPORARY_RESIDENCE_MUNICIPALITY": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": DENIED, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "MedicationService/GetMedicationList": {
        "FASTLEGE": OK, "REFERRAL_SENDER": OK, "RESIDENCE_MUNICIPALITY": OK,
        "TEMPORARY_RESIDENCE_MUNICIPALITY": OK, "MESSAGE_RECEIVER": OK,
        "REFERRAL_RECEIVER": OK, "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": DENIED, "emergency": OK,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    # --- municipal services ----------------------------------------------------------------
    "MunicipalService/DecideService": {
        "RESIDENCE_MUNICIPALITY": OK, "TEMPORARY_RESIDENCE_MUNICIPALITY": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "MunicipalService/StartService": {
        "RESIDENCE_MUNICIPALITY": OK, "TEMPORARY_RESIDENCE_MUNICIPALITY": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "MunicipalService/EndService": {
        "RESIDENCE_MUNICIPALITY": OK, "TEMPORARY_RESIDENCE_MUNICIPALITY": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "MunicipalService/GetService": {
        "FASTLEGE": OK, "REFERRAL_SENDER": OK, "RESIDENCE_MUNICIPALITY": OK,
        "TEMPORARY_RESIDENCE_MUNICIPALITY": OK, "MESSAGE_RECEIVER": OK,
        "REFERRAL_RECEIVER": OK, "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": DENIED, "emergency": OK,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    # --- pathway ---------------------------------------------------------------------------
    "PathwayService/GetPathway": {
        "FASTLEGE": OK, "REFERRAL_SENDER": OK, "RESIDENCE_MUNICIPALITY": OK,
        "TEMPORARY_RESIDENCE_MUNICIPALITY": OK, "MESSAGE_RECEIVER": OK,
        "REFERRAL_RECEIVER": OK, "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": DENIED, "emergency": OK,
        "citizen-self": OK, "citizen-other": DENIED,
    },
    "PathwayService/ExportFhir": {
        "FASTLEGE": OK, "REFERRAL_SENDER": OK, "RESIDENCE_MUNICIPALITY": OK,
        "TEMPORARY_RESIDENCE_MUNICIPALITY": OK, "MESSAGE_RECEIVER": OK,
        "REFERRAL_RECEIVER": OK, "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": DENIED, "emergency": OK,
        "citizen-self": OK, "citizen-other": DENIED,
    },
    "PathwayService/ListPathways": {
        "OWN_ORGANISATION": OK,
        "unrelated": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    # A municipality's own numbers, or any municipality's for an operator: aggregates naming
    # no one, so a patient's block does not stop them (the patient is counted, not shown).
    "PathwayService/Statistics": {
        "OWN_ORGANISATION": OK, "OPERATOR": OK,
        "unrelated": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "PathwayService/ListCancerPathwayShares": {
        "OWN_ORGANISATION": OK,
        "unrelated": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "PathwayService/WatchPathway": {
        "FASTLEGE": OK, "REFERRAL_SENDER": OK, "RESIDENCE_MUNICIPALITY": OK,
        "TEMPORARY_RESIDENCE_MUNICIPALITY": OK, "MESSAGE_RECEIVER": OK,
        "REFERRAL_RECEIVER": OK, "STAY_HOSPITAL": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": DENIED, "emergency": OK,
        "citizen-self": OK, "citizen-other": DENIED,
    },
    # --- registry --------------------------------------------------------------------------
    "RegistryService/RecordResidence": {
        "REGISTER_KEEPER": OK,
        "unrelated": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "RegistryService/RecordTemporaryResidence": {
        "REGISTER_KEEPER": OK,
        "unrelated": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "RegistryService/AssignFastlege": {
        "REGISTER_KEEPER": OK,
        "unrelated": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "RegistryService/RecordDeath": {
        "STAY_HOSPITAL": OK, "RESIDENCE_MUNICIPALITY": OK,
        "TEMPORARY_RESIDENCE_MUNICIPALITY": OK, "REGISTER_KEEPER": OK,
        "unrelated": DENIED, "expired": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "RegistryService/RegisterOrganisation": {
        "REGISTER_KEEPER": OK,
        "unrelated": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "RegistryService/GetRegistration": {
        "REGISTER_KEEPER": OK,
        "unrelated": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": OK, "citizen-other": DENIED,
    },
    "RegistryService/ListOrganisations": {
        "ORGANISATION_DIRECTORY": OK,
        "unrelated": OK, "blocked": OK, "emergency": OK,
        "citizen-self": OK, "citizen-other": OK,
    },
    # --- access ----------------------------------------------------------------------------
    "AccessService/BlockAccess": {
        "REGISTER_KEEPER": OK,
        "unrelated": DENIED, "emergency": DENIED,
        "citizen-self": OK, "citizen-other": DENIED,
    },
    "AccessService/LiftBlock": {
        "REGISTER_KEEPER": OK,
        "unrelated": DENIED, "emergency": DENIED,
        "citizen-self": OK, "citizen-other": DENIED,
    },
    "AccessService/GetBlocks": {
        "REGISTER_KEEPER": OK,
        "unrelated": DENIED, "emergency": DENIED,
        "citizen-self": OK, "citizen-other": DENIED,
    },
    "AccessService/RequestEmergencyAccess": {
        "unrelated": OK, "blocked": DENIED, "emergency": OK,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "AccessService/ListEmergencyAccesses": {
        "SUPERVISOR": OK, "no-role": DENIED,
        "unrelated": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "AccessService/ListAccesses": {
        "unrelated": DENIED, "emergency": DENIED,
        "citizen-self": OK, "citizen-other": DENIED,
    },
    # --- vendor subscriptions ----------------------------------------------------------------
    "SubscriptionAdminService/CreateSubscription": {
        "OPERATOR": OK, "no-role": DENIED,
        "unrelated": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "SubscriptionAdminService/ListSubscriptions": {
        "OPERATOR": OK, "no-role": DENIED,
        "unrelated": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "SubscriptionAdminService/PauseSubscription": {
        "OPERATOR": OK, "no-role": DENIED,
        "unrelated": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "SubscriptionAdminService/ResumeSubscription": {
        "OPERATOR": OK, "no-role": DENIED,
        "unrelated": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    "SubscriptionAdminService/DeleteSubscription": {
        "OPERATOR": OK, "no-role": DENIED,
        "unrelated": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
    # The stream is the subscription's vendor organisation's alone (the policy's OWNED target:
    # the streams service resolves the subscription to its vendor).
    "EventStreamService/Subscribe": {
        "OWN_ORGANISATION": OK,
        "unrelated": DENIED, "blocked": OK, "emergency": DENIED,
        "citizen-self": DENIED, "citizen-other": DENIED,
    },
}
# fmt: on

CELLS = [(rpc, situation) for rpc, row in EXPECTED.items() for situation in row]
#: Grounds that are situations of their own rather than cells named after them.
AS_SITUATIONS = {Basis.EMERGENCY: "emergency", Basis.SELF: "citizen-self"}
EVERYONE = ("unrelated", "emergency", "citizen-self", "citizen-other")


def situations_of(rule: Rule) -> set[str]:
    """The cells a call has (see the module's docstring)."""
    found = {b.value for b in rule.bases if b not in AS_SITUATIONS} | set(EVERYONE)
    if any(b in RELATIONSHIPS for b in rule.bases):
        found.add("expired")
    if rule.bases[0] is not Basis.SELF:
        found.add("blocked")
    if rule.roles:
        found.add("no-role")
    return found


# --- the stories told before the cells --------------------------------------------------------

LONG_AGO = date(2000, 1, 1)


@dataclass(frozen=True)
class Fact:
    """Something the pathway projector must have folded before a cell's call counts: a care
    relationship (`ended`: its end is known), a block, or the patient's pathway itself."""

    kind: str  # "relationship" | "block" | "pathway"
    patient_key: str
    her_id: str = ""
    basis: str = ""
    ended: bool = False


@dataclass
class Clients:
    referrals: referrals_pb2_grpc.ReferralServiceStub
    admissions: admissions_pb2_grpc.AdmissionServiceStub
    discharges: discharges_pb2_grpc.DischargeServiceStub
    correspondence: correspondence_pb2_grpc.CorrespondenceServiceStub
    medications: medications_pb2_grpc.MedicationServiceStub
    municipal: municipal_pb2_grpc.MunicipalServiceStub
    registry: registry_pb2_grpc.RegistryServiceStub
    access: registry_pb2_grpc.AccessServiceStub
    pathway: pathway_pb2_grpc.PathwayServiceStub
    streams: streams_pb2_grpc.SubscriptionAdminServiceStub
    events: streams_pb2_grpc.EventStreamServiceStub

    @classmethod
    def of(cls, system: Harness, streams: Server, events_port: int) -> Clients:
        """Stubs of the system's servers, and of the streams service's (`streams`: not a
        source of the pathway, so served beside the system)."""

        def channel(name: str) -> grpc.Channel:
            return system.channel(system.servers[name])

        registry = channel("registry")
        return cls(
            referrals=referrals_pb2_grpc.ReferralServiceStub(channel("referrals")),
            admissions=admissions_pb2_grpc.AdmissionServiceStub(channel("admissions")),
            discharges=discharges_pb2_grpc.DischargeServiceStub(channel("discharges")),
            correspondence=correspondence_pb2_grpc.CorrespondenceServiceStub(
                channel("correspondence")
            ),
            medications=medications_pb2_grpc.MedicationServiceStub(channel("medications")),
            municipal=municipal_pb2_grpc.MunicipalServiceStub(channel("municipal")),
            registry=registry_pb2_grpc.RegistryServiceStub(registry),
            access=registry_pb2_grpc.AccessServiceStub(registry),
            pathway=pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server)),
            streams=streams_pb2_grpc.SubscriptionAdminServiceStub(system.channel(streams)),
            events=streams_pb2_grpc.EventStreamServiceStub(
                grpc.insecure_channel(f"127.0.0.1:{events_port}")
            ),
        )


#: The stub of each service (by the first part of a rule's name).
STUB_OF = {
    "ReferralService": "referrals",
    "AdmissionService": "admissions",
    "DischargeService": "discharges",
    "CorrespondenceService": "correspondence",
    "MedicationService": "medications",
    "MunicipalService": "municipal",
    "RegistryService": "registry",
    "AccessService": "access",
    "PathwayService": "pathway",
    "SubscriptionAdminService": "streams",
    "EventStreamService": "events",
}


@dataclass
class World:
    system: Harness
    clients: Clients
    now: datetime

    @property
    def today(self) -> date:
        return self.now.astimezone(OSLO).date()

    def ago(self, *, days: float = 0, hours: float = 0) -> datetime:
        return self.now - timedelta(days=days, hours=hours)


def date_pb(day: date) -> common_pb2.Date:
    return common_pb2.Date(year=day.year, month=day.month, day=day.day)


@dataclass
class Story:
    """One cell's patient and what happened to them, through the real servers (and, where a
    production process outside the servers does it, the same application call)."""

    world: World
    index: int
    facts: list[Fact] = field(default_factory=list)
    commands: int = 0
    fastlege: Actor | None = None
    residence: Actor | None = None
    referral: str = ""
    receiver: Actor | None = None
    stay: str = ""
    stay_municipality: Actor | None = None
    message: str = ""
    correspondence: str = ""
    entry: str = ""
    block: str = ""
    subscription: str = ""
    service: str = ""  # a municipal service
    fnr: str = field(init=False)
    patient: dict[str, str] = field(init=False)
    key: str = field(init=False)

    def __post_init__(self) -> None:
        i = self.index
        # Born 1921–1922: a range no other test module uses.
        self.fnr = make_fnr(1 + i % 28, 1 + (i // 28) % 12, 21 + i // 336, 50)
        self.patient = {"system": FNR_SYSTEM, "value": self.fnr}
        self.key = readmodel.patient_key(self.patient)

    @property
    def pb(self) -> common_pb2.PatientIdentifier:
        return common_pb2.PatientIdentifier(**self.patient)

    @property
    def c(self) -> Clients:
        return self.world.clients

    def meta(self, at: datetime | None = None) -> common_pb2.CommandMetadata:
        self.commands += 1
        return support.meta(f"matrix-{self.index}-{self.commands}", at or self.world.now)

    def context(self, actor: Actor, at: datetime) -> CommandContext:
        self.commands += 1
        command_id = f"matrix-{self.index}-{self.commands}"
        return support.ctx(actor, command_id, at, correlation_id=command_id)

    def expect(self, who: Actor, basis: Basis, ended: bool = False) -> None:
        self.facts.append(Fact("relationship", self.key, who.her_id, basis.value, ended))

    # --- the registers (the register adapter) -------------------------------------------------

    def lives_in(self, municipality: Actor, since: date = LONG_AGO) -> None:
        self.c.registry.RecordResidence(
            registry_pb2.RecordResidenceRequest(
                metadata=self.meta(),
                patient=self.pb,
                municipality_her_id=municipality.her_id,
                valid_from=date_pb(since),
            ),
            metadata=auth(REGISTER_ADAPTER),
        )
        self.expect(municipality, Basis.RESIDENCE_MUNICIPALITY)
        if self.residence is not None:
            self.expect(self.residence, Basis.RESIDENCE_MUNICIPALITY, ended=True)
        self.residence = municipality

    def stays_in(self, municipality: Actor) -> None:
        """A temporary residence (opphold) from a month ago to a month ahead."""
        self.c.registry.RecordTemporaryResidence(
            registry_pb2.RecordTemporaryResidenceRequest(
                metadata=self.meta(),
                patient=self.pb,
                municipality_her_id=municipality.her_id,
                valid_from=date_pb(self.world.today - timedelta(days=30)),
                valid_to=date_pb(self.world.today + timedelta(days=30)),
            ),
            metadata=auth(REGISTER_ADAPTER),
        )
        self.expect(municipality, Basis.TEMPORARY_RESIDENCE_MUNICIPALITY)

    def has_fastlege(self, gp: Actor, since: date = LONG_AGO, until: date | None = None) -> None:
        request = registry_pb2.AssignFastlegeRequest(
            metadata=self.meta(),
            patient=self.pb,
            gp_her_id=gp.her_id,
            gp_hpr_number=gp.hpr or "",
            valid_from=date_pb(since),
        )
        if until is not None:
            request.valid_to.CopyFrom(date_pb(until))
        self.c.registry.AssignFastlege(request, metadata=auth(REGISTER_ADAPTER))
        self.expect(gp, Basis.FASTLEGE, ended=until is not None)
        if until is None:
            if self.fastlege is not None:
                self.expect(self.fastlege, Basis.FASTLEGE, ended=True)
            self.fastlege = gp

    # --- referrals ----------------------------------------------------------------------------

    def refers(self, cancer: bool = False) -> None:
        """The fastlege refers the patient to the receiving hospital."""
        assert self.fastlege is not None, "only the fastlege refers"
        sent = self.c.referrals.SendReferral(
            referrals_pb2.SendReferralRequest(
                metadata=self.meta(self.world.ago(hours=5)),
                patient=self.pb,
                receiver_her_id=RECEIVING_HOSPITAL.her_id,
                reason="Brystsmerter ved anstrengelse, ønsker vurdering",
                priority=referrals_pb2.REFERRAL_PRIORITY_ROUTINE,
                cancer_pathway=(
                    referrals_pb2.CANCER_PATHWAY_BREAST
                    if cancer
                    else referrals_pb2.CANCER_PATHWAY_UNSPECIFIED
                ),
            ),
            metadata=auth(self.fastlege),
        )
        self.referral, self.receiver = sent.referral_id, RECEIVING_HOSPITAL
        self.expect(self.fastlege, Basis.REFERRAL_SENDER)
        self.expect(RECEIVING_HOSPITAL, Basis.REFERRAL_RECEIVER)

    def hospital_receives(self) -> None:
        assert self.receiver is not None
        self.c.referrals.RecordReferralReceipt(
            referrals_pb2.RecordReferralReceiptRequest(
                metadata=self.meta(self.world.ago(hours=4)),
                referral_id=self.referral,
                receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK),
            ),
            metadata=auth(self.receiver),
        )

    def hospital_system_rejects_the_message(self) -> None:
        """The receiving hospital's system answers the referral with AppRec REJECTED."""
        assert self.receiver is not None
        self.c.referrals.RecordReferralReceipt(
            referrals_pb2.RecordReferralReceiptRequest(
                metadata=self.meta(self.world.ago(hours=4)),
                referral_id=self.referral,
                receipt=common_pb2.AppRec(
                    status=common_pb2.APP_REC_STATUS_REJECTED,
                    errors=[common_pb2.AppRecError(code="E10", description="Ugyldig format")],
                ),
            ),
            metadata=auth(self.receiver),
        )

    def hospital_accepts(self) -> None:
        assert self.receiver is not None
        self.c.referrals.AcceptReferral(
            referrals_pb2.AcceptReferralRequest(
                metadata=self.meta(self.world.ago(hours=3)),
                referral_id=self.referral,
                planned_date=date_pb(self.world.today + timedelta(days=14)),
            ),
            metadata=auth(self.receiver),
        )

    def hospital_rejects(self) -> None:
        assert self.receiver is not None
        self.c.referrals.RejectReferral(
            referrals_pb2.RejectReferralRequest(
                metadata=self.meta(self.world.ago(hours=3)),
                referral_id=self.referral,
                reason="Kan utredes hos fastlegen",
            ),
            metadata=auth(self.receiver),
        )

    def hospital_forwards(self) -> None:
        assert self.receiver is not None
        self.c.referrals.ForwardReferral(
            referrals_pb2.ForwardReferralRequest(
                metadata=self.meta(self.world.ago(hours=3)),
                referral_id=self.referral,
                new_receiver_her_id=FORWARD_HOSPITAL.her_id,
                reason="Kortere ventetid",
            ),
            metadata=auth(self.receiver),
        )
        self.expect(self.receiver, Basis.REFERRAL_RECEIVER, ended=True)
        self.expect(FORWARD_HOSPITAL, Basis.REFERRAL_RECEIVER)
        self.receiver = FORWARD_HOSPITAL

    # --- the stay -----------------------------------------------------------------------------

    def admitted(self, municipality: Actor = MUNICIPALITY, at: datetime | None = None) -> None:
        stay = self.c.admissions.AdmitPatient(
            admissions_pb2.AdmitPatientRequest(
                metadata=self.meta(at or self.world.ago(hours=6)),
                patient=self.pb,
                ward="Medisinsk sengepost 3",
                admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
                municipality_her_id=municipality.her_id,
            ),
            metadata=auth(HOSPITAL),
        )
        self.stay, self.stay_municipality = stay.stay_id, municipality
        self.expect(HOSPITAL, Basis.STAY_HOSPITAL)

    def hospital_sends_admission_notice(self) -> None:
        assert self.stay_municipality is not None
        stay = self.c.admissions.SendAdmissionNotice(
            admissions_pb2.SendAdmissionNoticeRequest(
                metadata=self.meta(self.world.ago(hours=5)), stay_id=self.stay
            ),
            metadata=auth(HOSPITAL),
        )
        (notice,) = [
            m for m in stay.messages if m.type == admissions_pb2.STAY_MESSAGE_TYPE_ADMISSION_NOTICE
        ]
        self.message = notice.message_id
        self.expect(self.stay_municipality, Basis.MESSAGE_RECEIVER)

    def municipality_answers_the_notice(self) -> None:
        assert self.stay_municipality is not None
        self.c.admissions.RecordMessageReceipt(
            admissions_pb2.RecordMessageReceiptRequest(
                metadata=self.meta(self.world.ago(hours=4)),
                stay_id=self.stay,
                message_id=self.message,
                receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK),
            ),
            metadata=auth(self.stay_municipality),
        )

    def stay_closes(self, at: datetime) -> None:
        """The hospital closes the stay, and the discharges service hears of it (as its nameko
        reaction to StayClosed does)."""
        closed = self.c.admissions.CloseStay(
            admissions_pb2.CloseStayRequest(
                metadata=self.meta(at),
                stay_id=self.stay,
                reason=admissions_pb2.STAY_CLOSE_REASON_DISCHARGED,
            ),
            metadata=auth(HOSPITAL),
        )
        self.discharges_app.stays.closed(self.stay, self.patient, closed.version, HOSPITAL.her_id)
        self.expect(HOSPITAL, Basis.STAY_HOSPITAL, ended=True)

    # --- the discharge ------------------------------------------------------------------------

    @property
    def discharges_app(self) -> DischargesApplication:
        app = self.world.system.apps["discharges"]
        assert isinstance(app, DischargesApplication)
        return app

    def discharges_know_the_stay(self) -> None:
        """What the discharges service's nameko process records on PatientAdmitted."""
        assert self.stay_municipality is not None
        self.discharges_app.stays.admitted(
            self.stay, self.patient, HOSPITAL.her_id, self.stay_municipality.her_id
        )

    def declared_ready(self, at: datetime | None = None) -> None:
        self.c.discharges.DeclareReadyForDischarge(
            discharges_pb2.DeclareReadyForDischargeRequest(
                metadata=self.meta(at or self.world.ago(hours=2)), stay_id=self.stay
            ),
            metadata=auth(HOSPITAL),
        )

    def discharged_home(self, at: datetime) -> None:
        self.c.discharges.DischargePatient(
            discharges_pb2.DischargePatientRequest(
                metadata=self.meta(at),
                stay_id=self.stay,
                destination=discharges_pb2.DISCHARGE_DESTINATION_HOME,
            ),
            metadata=auth(HOSPITAL),
        )

    def epicrisis_to_the_gp(self) -> None:
        discharge = self.c.discharges.SendEpicrisis(
            discharges_pb2.SendEpicrisisRequest(
                metadata=self.meta(self.world.ago(hours=1)),
                stay_id=self.stay,
                to_her_id=GP.her_id,
            ),
            metadata=auth(HOSPITAL),
        )
        (epicrisis,) = [m for m in discharge.messages if m.to_her_id == GP.her_id]
        self.message = epicrisis.message_id

    def gp_answers_the_epicrisis(self) -> None:
        self.c.discharges.RecordMessageReceipt(
            discharges_pb2.RecordDischargeMessageReceiptRequest(
                metadata=self.meta(self.world.ago(hours=0.5)),
                stay_id=self.stay,
                message_id=self.message,
                receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK),
            ),
            metadata=auth(GP),
        )

    # --- the correspondence between municipality and GP ---------------------------------------

    def municipality_asks_the_fastlege(self) -> None:
        """The municipality the patient lives in sends the fastlege a Forespørsel."""
        assert self.residence is not None
        sent = self.c.correspondence.SendMessage(
            correspondence_pb2.SendCorrespondenceMessageRequest(
                metadata=self.meta(self.world.ago(hours=3)),
                patient=self.pb,
                message_type=correspondence_pb2.CORRESPONDENCE_MESSAGE_TYPE_REQUEST,
                text="Søknad om sykehjemsplass: ber om oppdaterte medisinske opplysninger",
            ),
            metadata=auth(self.residence),
        )
        self.correspondence = sent.correspondence_id
        self.message = sent.messages[0].message_id

    def fastlege_answers(self) -> None:
        assert self.fastlege is not None
        self.c.correspondence.AnswerRequest(
            correspondence_pb2.AnswerCorrespondenceRequestRequest(
                metadata=self.meta(self.world.ago(hours=1)),
                correspondence_id=self.correspondence,
                message_type=correspondence_pb2.CORRESPONDENCE_MESSAGE_TYPE_MEDICAL_INFORMATION,
                text="Hjertesvikt NYHA III, KOLS; legemiddelliste vedlagt",
            ),
            metadata=auth(self.fastlege),
        )

    def fastlege_receipts_the_request(self) -> None:
        assert self.fastlege is not None
        self.c.correspondence.RecordMessageReceipt(
            correspondence_pb2.RecordCorrespondenceMessageReceiptRequest(
                metadata=self.meta(self.world.ago(hours=2)),
                correspondence_id=self.correspondence,
                message_id=self.message,
                receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK),
            ),
            metadata=auth(self.fastlege),
        )

    # --- the medication list (recorded earlier, straight into the service's application) ------

    @property
    def medications_app(self) -> MedicationsApplication:
        app = self.world.system.apps["medications"]
        assert isinstance(app, MedicationsApplication)
        return app

    def has_medication(self, paused: bool = False) -> None:
        """A hospital put Metformin on the list ten days ago (paused nine days ago)."""
        listed = self.medications_app.prescribe(
            self.context(HOSPITAL, self.world.ago(days=10)),
            self.patient,
            "A10BA02",
            "Metformin",
            "500 mg x 2",
            "Diabetes type 2",
        )
        self.entry = listed.ordered_entries()[-1].entry_id
        if paused:
            self.medications_app.pause(
                self.context(HOSPITAL, self.world.ago(days=9)),
                self.patient,
                uuid.UUID(self.entry),
                "Pause før operasjon",
            )

    def service_decided(self, municipality: Actor) -> None:
        """The municipality decided home nursing for the patient (by its application: the
        cell's call is what the policy is asked about)."""
        app = self.world.system.apps["municipal"]
        assert isinstance(app, MunicipalApplication)
        decided = app.decide(
            self.context(municipality, self.world.ago(hours=3)), self.patient,
            ServiceKind.HOME_NURSING, self.world.today, None,
        )  # fmt: skip
        self.service = str(decided.id)

    def has_pathway(self) -> None:
        self.has_medication()
        self.facts.append(Fact("pathway", self.key))

    def pathway_changes(self) -> None:
        """Something new in the pathway: a reconciliation of the list."""
        self.medications_app.reconcile(
            self.context(HOSPITAL, datetime.now(UTC)),
            self.patient,
            [ReconciliationSource.PATIENT],
            None,
        )

    # --- the patient's say and the emergency ---------------------------------------------------

    def blocks(self, organisation: Actor) -> None:
        """The patient blocks the organisation themself (Helsenorge)."""
        self.c.access.BlockAccess(
            registry_pb2.BlockAccessRequest(
                metadata=self.meta(), patient=self.pb, her_id=organisation.her_id
            ),
            metadata=auth(Actor.citizen(self.fnr)),
        )
        self.facts.append(Fact("block", self.key, organisation.her_id))

    def a_block_to_lift(self) -> None:
        """The register adapter recorded a block of the previous fastlege office."""
        blocked = self.c.access.BlockAccess(
            registry_pb2.BlockAccessRequest(
                metadata=self.meta(), patient=self.pb, her_id=OTHER_GP.her_id
            ),
            metadata=auth(REGISTER_ADAPTER),
        )
        self.block = blocked.blocks[-1].block_id

    def breaks_the_glass(self, doctor: Actor) -> None:
        self.c.access.RequestEmergencyAccess(
            registry_pb2.RequestEmergencyAccessRequest(
                patient=self.pb,
                reason=common_pb2.EMERGENCY_REASON_LIFE_THREATENING,
                justification="Bevisstløs ved ankomst, trenger legemiddelliste og innleggelser",
            ),
            metadata=auth(doctor),
        )

    # --- the vendor's subscription (carepath's operator) ---------------------------------------

    def vendor_subscribes(self) -> None:
        """The operator creates the cell's own subscription for the vendor: its own name, so
        its own queue and broker user (removed when the matrix ends)."""
        self.subscription = subscription_name(self)
        self.c.streams.CreateSubscription(create_subscription(self), metadata=auth(OPERATOR))

    def subscription_paused(self) -> None:
        self.c.streams.PauseSubscription(
            streams_pb2.SubscriptionCommand(metadata=self.meta(), name=self.subscription),
            metadata=auth(OPERATOR),
        )


def subscription_name(s: Story) -> str:
    return f"matrix-{s.index}"


def create_subscription(s: Story) -> streams_pb2.CreateSubscriptionRequest:
    """The vendor's system files the served municipality's prescriptions in its record."""
    return streams_pb2.CreateSubscriptionRequest(
        metadata=s.meta(),
        name=subscription_name(s),
        vendor_her_id=VENDOR.her_id,
        subscription_purpose=streams_pb2.SUBSCRIPTION_PURPOSE_HEALTH_CARE,
        event_types=["MedicationPrescribed"],
        served_her_ids=[SERVED.her_id],
    )


#: A story step: plain commands, or a generator whose every `yield` waits until the pathway
#: projector has folded what the story did so far (the next command depends on it).
Step = Callable[[Story], object]


def chain(*steps: Step) -> Callable[[Story], Iterator[None]]:
    def story(s: Story) -> Iterator[None]:
        for step in steps:
            told = step(s)
            if isinstance(told, Iterator):
                yield from told

    return story


def nothing(s: Story) -> None:
    return None


# --- the relationships, one story each -----------------------------------------------------------


def has_fastlege(s: Story) -> None:
    s.has_fastlege(GP)


def fastlege_ended(s: Story) -> None:
    """OTHER_GP was the fastlege until the end of 2020; GP since."""
    s.has_fastlege(OTHER_GP, until=date(2020, 12, 31))
    s.has_fastlege(GP, since=date(2021, 1, 1))


def referred(s: Story, cancer: bool = False) -> Iterator[None]:
    """The fastlege (GP, unless the story named one) refers to the receiving hospital."""
    if s.fastlege is None:
        s.has_fastlege(GP)
    yield  # SendReferral asks the access facts whether GP is the fastlege
    s.refers(cancer)


def referred_by_the_former_fastlege(s: Story) -> Iterator[None]:
    """GP referred while it was the fastlege; from today OTHER_GP is."""
    yield from referred(s)
    s.has_fastlege(OTHER_GP, since=s.world.today)


def lives_in_municipality(s: Story) -> None:
    s.lives_in(MUNICIPALITY)


def moved_away(s: Story) -> None:
    """Lived in MUNICIPALITY, moved to OTHER_MUNICIPALITY in 2024."""
    s.lives_in(MUNICIPALITY)
    s.lives_in(OTHER_MUNICIPALITY, since=date(2024, 1, 1))


def stays_in_other_municipality(s: Story) -> None:
    s.stays_in(OTHER_MUNICIPALITY)


def notified_municipality(s: Story) -> None:
    """Lives in MUNICIPALITY, admitted with OTHER_MUNICIPALITY to be told: the hospital sent
    it the admission notice."""
    s.lives_in(MUNICIPALITY)
    s.admitted(municipality=OTHER_MUNICIPALITY)
    s.hospital_sends_admission_notice()


def admitted(s: Story) -> None:
    s.admitted()


def admitted_and_closed_long_ago(s: Story) -> None:
    """In hospital 45 to 35 days ago: past the 30 days a stay's hospital keeps access."""
    s.admitted(at=s.world.ago(days=45))
    s.discharges_know_the_stay()
    s.stay_closes(s.world.ago(days=35))


def discharged_long_ago(s: Story) -> None:
    """Admitted 45 days ago, ready 40 days ago, discharged home 35 days ago."""
    s.admitted(at=s.world.ago(days=45))
    s.discharges_know_the_stay()
    s.declared_ready(s.world.ago(days=40))
    s.discharged_home(s.world.ago(days=35))
    s.stay_closes(s.world.ago(days=35))


def blocks(organisation: Actor) -> Step:
    return lambda s: s.blocks(organisation)


def breaks_the_glass(doctor: Actor) -> Step:
    return lambda s: s.breaks_the_glass(doctor)


@dataclass(frozen=True)
class Scene:
    """Who makes the cell's call (an Actor, or THE_PATIENT), after which story."""

    caller: Actor | str
    story: Step


#: Each care relationship of a clinical read or a prescription: the caller and its story.
RELATIONSHIP_SCENES = {
    Basis.FASTLEGE: Scene(GP, has_fastlege),
    Basis.REFERRAL_SENDER: Scene(GP, referred_by_the_former_fastlege),
    Basis.RESIDENCE_MUNICIPALITY: Scene(MUNICIPALITY, lives_in_municipality),
    Basis.TEMPORARY_RESIDENCE_MUNICIPALITY: Scene(OTHER_MUNICIPALITY, stays_in_other_municipality),
    Basis.MESSAGE_RECEIVER: Scene(OTHER_MUNICIPALITY, notified_municipality),
    Basis.REFERRAL_RECEIVER: Scene(RECEIVING_HOSPITAL, referred),
    Basis.STAY_HOSPITAL: Scene(HOSPITAL, admitted),
}


def for_everyone(target: Step, kind: OrgKind) -> dict[str, Scene]:
    """The situations every call has, about the same target."""
    doctor = EMERGENCY_DOCTORS[kind]
    return {
        "unrelated": Scene(STRANGERS[kind], target),
        "emergency": Scene(doctor, chain(target, breaks_the_glass(doctor))),
        "citizen-self": Scene(THE_PATIENT, target),
        "citizen-other": Scene(SOMEONE_ELSE, target),
    }


def relationship_scenes(bases: tuple[Basis, ...], target: Step) -> dict[str, Scene]:
    """Calls any of several care relationships open (reads, the medication list): FASTLEGE
    first, so the fastlege is the one who expires and is blocked."""
    scenes = {
        b.value: Scene(RELATIONSHIP_SCENES[b].caller, chain(RELATIONSHIP_SCENES[b].story, target))
        for b in bases
        if b in RELATIONSHIP_SCENES
    }
    return {
        **scenes,
        "expired": Scene(OTHER_GP, chain(fastlege_ended, target)),
        "blocked": Scene(GP, chain(has_fastlege, blocks(GP), target)),
        **for_everyone(target, OrgKind.HOSPITAL),
    }


def receiving_hospital_scenes(target: Step) -> dict[str, Scene]:
    """The receiving hospital's commands on a referral; it expires by forwarding it."""
    return {
        "REFERRAL_RECEIVER": Scene(RECEIVING_HOSPITAL, target),
        "expired": Scene(RECEIVING_HOSPITAL, forwarded),
        "blocked": Scene(RECEIVING_HOSPITAL, chain(target, blocks(RECEIVING_HOSPITAL))),
        **for_everyone(target, OrgKind.HOSPITAL),
    }


def stay_hospital_scenes(target: Step) -> dict[str, Scene]:
    """The hospital's commands on its stay or its discharge; it expires 30 days after."""
    expired = admitted_and_closed_long_ago
    if target is not admitted:
        expired = discharged_long_ago
    return {
        "STAY_HOSPITAL": Scene(HOSPITAL, target),
        "expired": Scene(HOSPITAL, expired),
        "blocked": Scene(HOSPITAL, chain(target, blocks(HOSPITAL))),
        **for_everyone(target, OrgKind.HOSPITAL),
    }


def home_municipality_scenes(then: Step) -> dict[str, Scene]:
    """The municipality's answers about a stay of a patient who lives or stays in it, or
    about whom it was sent a message; `then`: what the stay must have come to."""

    def stay_for(municipality: Actor) -> Step:
        return lambda s: s.admitted(municipality=municipality)

    return {
        "RESIDENCE_MUNICIPALITY": Scene(
            MUNICIPALITY, chain(lives_in_municipality, stay_for(MUNICIPALITY), then)
        ),
        "TEMPORARY_RESIDENCE_MUNICIPALITY": Scene(
            OTHER_MUNICIPALITY,
            chain(stays_in_other_municipality, stay_for(OTHER_MUNICIPALITY), then),
        ),
        "MESSAGE_RECEIVER": Scene(OTHER_MUNICIPALITY, chain(notified_municipality, then)),
        "expired": Scene(MUNICIPALITY, chain(moved_away, stay_for(OTHER_MUNICIPALITY), then)),
        "blocked": Scene(
            MUNICIPALITY,
            chain(lives_in_municipality, stay_for(MUNICIPALITY), blocks(MUNICIPALITY), then),
        ),
        **for_everyone(chain(stay_for(MUNICIPALITY), then), OrgKind.MUNICIPALITY),
    }


def receipt_scenes(receiver: Actor, target: Step, answers: Step) -> dict[str, Scene]:
    """The receiver of a message, for its receipt. Once it has recorded it (`answers`), it is
    still the message's receiver (a retry returns the first result), so a second receipt is
    refused by the message itself: FAILED_PRECONDITION, not the policy."""
    assert receiver.org_kind in EMERGENCY_DOCTORS
    return {
        "RECEIPT_DUE": Scene(receiver, target),
        "expired": Scene(receiver, chain(target, answers)),
        "blocked": Scene(receiver, chain(target, blocks(receiver))),
        **for_everyone(target, receiver.org_kind),
    }


def keeper_scenes(target: Step = nothing, blockable_caller: bool = True) -> dict[str, Scene]:
    """The register adapter's calls."""
    scenes = {"REGISTER_KEEPER": Scene(REGISTER_ADAPTER, target)}
    if blockable_caller:
        scenes["blocked"] = Scene(REGISTER_ADAPTER, chain(target, blocks(REGISTER_ADAPTER)))
    return {**scenes, **for_everyone(target, OrgKind.HOSPITAL)}


def operator_scenes(target: Step) -> dict[str, Scene]:
    """The operator's calls on the vendors' subscriptions; the vendor itself has no role."""
    return {
        "OPERATOR": Scene(OPERATOR, target),
        "no-role": Scene(VENDOR, target),
        "blocked": Scene(OPERATOR, chain(target, blocks(OPERATOR))),
        **for_everyone(target, OrgKind.HOSPITAL),
    }


# --- what each call needs to find ------------------------------------------------------------


def received(s: Story, cancer: bool = False) -> Iterator[None]:
    yield from referred(s, cancer)
    s.hospital_receives()


def cancer_referral_received(s: Story) -> Iterator[None]:
    yield from received(s, cancer=True)


def accepted(s: Story) -> Iterator[None]:
    yield from received(s)
    s.hospital_accepts()


def rejected(s: Story) -> Iterator[None]:
    yield from received(s)
    s.hospital_rejects()


def receipt_rejected(s: Story) -> Iterator[None]:
    yield from referred(s)
    s.hospital_system_rejects_the_message()


def forwarded(s: Story) -> Iterator[None]:
    yield from received(s)
    s.hospital_forwards()


def a_referral(s: Story) -> Iterator[None]:
    if not s.referral:
        yield from referred(s)


def a_stay(s: Story) -> None:
    if not s.stay:
        s.admitted()


def stay_known_to_discharges(s: Story) -> None:
    a_stay(s)
    s.discharges_know_the_stay()


def ready_for_discharge(s: Story) -> None:
    stay_known_to_discharges(s)
    s.declared_ready()


def discharged(s: Story) -> None:
    stay_known_to_discharges(s)
    s.discharged_home(s.world.ago(hours=2))
    s.stay_closes(s.world.ago(hours=2))


def epicrisis_sent(s: Story) -> None:
    discharged(s)
    s.epicrisis_to_the_gp()


def notice_sent(s: Story) -> None:
    s.admitted(municipality=MUNICIPALITY)
    s.hospital_sends_admission_notice()


def registered_with_both(s: Story) -> None:
    """The registers name the patient's fastlege (GP) and municipality (MUNICIPALITY), unless
    the story named them already."""
    if s.fastlege is None:
        s.has_fastlege(GP)
    if s.residence is None:
        s.lives_in(MUNICIPALITY)


def a_request_to_the_fastlege(s: Story) -> Iterator[None]:
    """The municipality asks the fastlege (once the access facts know both: the service
    reads the receiver from them)."""
    registered_with_both(s)
    yield
    s.municipality_asks_the_fastlege()


def a_medication(s: Story) -> None:
    s.has_medication()


def a_paused_medication(s: Story) -> None:
    s.has_medication(paused=True)


def a_pathway(s: Story) -> None:
    s.has_pathway()


def a_block(s: Story) -> None:
    s.a_block_to_lift()


def the_municipalitys_patient(s: Story) -> None:
    s.lives_in(MUNICIPALITY)


def a_subscription(s: Story) -> None:
    s.vendor_subscribes()


def a_paused_subscription(s: Story) -> None:
    s.vendor_subscribes()
    s.subscription_paused()


def decided_by(municipality: Actor) -> Step:
    return lambda s: s.service_decided(municipality)


def a_service(s: Story) -> None:
    if not s.service:
        s.service_decided(MUNICIPALITY)


def service_municipality_scenes(needs_service: bool) -> dict[str, Scene]:
    """The municipality the patient lives or stays in, by the registers, decides and (the
    deciding one) starts and ends — with `needs_service`, a service it decided. It expires
    when the patient moves away."""

    def then(municipality: Actor) -> Step:
        return decided_by(municipality) if needs_service else nothing

    return {
        "RESIDENCE_MUNICIPALITY": Scene(
            MUNICIPALITY, chain(lives_in_municipality, then(MUNICIPALITY))
        ),
        "TEMPORARY_RESIDENCE_MUNICIPALITY": Scene(
            OTHER_MUNICIPALITY, chain(stays_in_other_municipality, then(OTHER_MUNICIPALITY))
        ),
        "expired": Scene(MUNICIPALITY, chain(moved_away, then(MUNICIPALITY))),
        "blocked": Scene(
            MUNICIPALITY, chain(lives_in_municipality, then(MUNICIPALITY), blocks(MUNICIPALITY))
        ),
        **for_everyone(chain(lives_in_municipality, then(MUNICIPALITY)), OrgKind.MUNICIPALITY),
    }


CLINICAL = RULES["/carepath.v1.ReferralService/GetReferral"].bases
PRESCRIBERS = RULES["/carepath.v1.MedicationService/PrescribeMedication"].bases
ER_DOCTOR = EMERGENCY_DOCTORS[OrgKind.HOSPITAL]

SCENES: dict[str, dict[str, Scene]] = {
    "ReferralService/SendReferral": {
        "FASTLEGE": Scene(GP, has_fastlege),
        "expired": Scene(OTHER_GP, fastlege_ended),
        "blocked": Scene(GP, chain(has_fastlege, blocks(GP))),
        **for_everyone(nothing, OrgKind.GP),
    },
    "ReferralService/RecordReferralReceipt": receiving_hospital_scenes(referred),
    "ReferralService/AcceptReferral": receiving_hospital_scenes(received),
    "ReferralService/RejectReferral": receiving_hospital_scenes(received),
    "ReferralService/ForwardReferral": receiving_hospital_scenes(received),
    "ReferralService/CompleteReferral": receiving_hospital_scenes(accepted),
    "ReferralService/RecordCancerPathwayMilestone": receiving_hospital_scenes(
        cancer_referral_received
    ),
    "ReferralService/EndCancerPathway": receiving_hospital_scenes(cancer_referral_received),
    "ReferralService/ResendReferral": {
        "REFERRAL_SENDER": Scene(GP, receipt_rejected),
        "expired": Scene(GP, rejected),
        "blocked": Scene(GP, chain(receipt_rejected, blocks(GP))),
        **for_everyone(receipt_rejected, OrgKind.GP),
    },
    "ReferralService/CancelReferral": {
        "REFERRAL_SENDER": Scene(GP, referred),
        "expired": Scene(GP, rejected),
        "blocked": Scene(GP, chain(referred, blocks(GP))),
        **for_everyone(referred, OrgKind.GP),
    },
    "ReferralService/GetReferral": relationship_scenes(CLINICAL, a_referral),
    "AdmissionService/AdmitPatient": {
        "ADMITTING_HOSPITAL": Scene(HOSPITAL, nothing),
        "blocked": Scene(HOSPITAL, blocks(HOSPITAL)),
        **for_everyone(nothing, OrgKind.HOSPITAL),
    },
    "AdmissionService/SendAdmissionNotice": stay_hospital_scenes(admitted),
    "AdmissionService/RecordAdmissionReport": home_municipality_scenes(nothing),
    "AdmissionService/SendHealthInformation": stay_hospital_scenes(admitted),
    "AdmissionService/RecordMessageReceipt": receipt_scenes(
        MUNICIPALITY, notice_sent, lambda s: s.municipality_answers_the_notice()
    ),
    "AdmissionService/TransferPatient": stay_hospital_scenes(admitted),
    "AdmissionService/CloseStay": stay_hospital_scenes(admitted),
    "AdmissionService/GetStay": relationship_scenes(CLINICAL, a_stay),
    "AdmissionService/ListStays": relationship_scenes(CLINICAL, nothing),
    "DischargeService/DeclareReadyForDischarge": stay_hospital_scenes(stay_known_to_discharges),
    "DischargeService/AnswerReadiness": home_municipality_scenes(ready_for_discharge),
    "DischargeService/WithdrawReadiness": stay_hospital_scenes(ready_for_discharge),
    "DischargeService/DischargePatient": stay_hospital_scenes(stay_known_to_discharges),
    "DischargeService/SendEpicrisis": stay_hospital_scenes(discharged),
    "DischargeService/RecordMessageReceipt": receipt_scenes(
        GP, epicrisis_sent, lambda s: s.gp_answers_the_epicrisis()
    ),
    "DischargeService/GetDischarge": relationship_scenes(CLINICAL, ready_for_discharge),
    "CorrespondenceService/SendMessage": {
        "FASTLEGE": Scene(GP, chain(has_fastlege, lives_in_municipality)),
        "TEMPORARY_RESIDENCE_MUNICIPALITY": Scene(
            OTHER_MUNICIPALITY, chain(stays_in_other_municipality, has_fastlege)
        ),
        "RESIDENCE_MUNICIPALITY": Scene(MUNICIPALITY, chain(lives_in_municipality, has_fastlege)),
        "expired": Scene(OTHER_GP, chain(fastlege_ended, lives_in_municipality)),
        "blocked": Scene(GP, chain(has_fastlege, lives_in_municipality, blocks(GP))),
        **for_everyone(chain(has_fastlege, lives_in_municipality), OrgKind.GP),
    },
    "CorrespondenceService/AnswerRequest": {
        "MESSAGE_RECEIVER": Scene(GP, a_request_to_the_fastlege),
        "expired": Scene(GP, chain(a_request_to_the_fastlege, lambda s: s.fastlege_answers())),
        "blocked": Scene(GP, chain(a_request_to_the_fastlege, blocks(GP))),
        **for_everyone(a_request_to_the_fastlege, OrgKind.GP),
    },
    "CorrespondenceService/RecordMessageReceipt": receipt_scenes(
        GP, a_request_to_the_fastlege, lambda s: s.fastlege_receipts_the_request()
    ),
    "CorrespondenceService/GetCorrespondence": relationship_scenes(
        CLINICAL, a_request_to_the_fastlege
    ),
    "MedicationService/PrescribeMedication": relationship_scenes(PRESCRIBERS, nothing),
    "MedicationService/ChangeDose": relationship_scenes(PRESCRIBERS, a_medication),
    "MedicationService/PauseMedication": relationship_scenes(PRESCRIBERS, a_medication),
    "MedicationService/ResumeMedication": relationship_scenes(PRESCRIBERS, a_paused_medication),
    "MedicationService/DiscontinueMedication": relationship_scenes(PRESCRIBERS, a_medication),
    "MedicationService/ReconcileMedicationList": relationship_scenes(PRESCRIBERS, nothing),
    "MedicationService/GetMedicationList": relationship_scenes(CLINICAL, a_medication),
    "MunicipalService/DecideService": service_municipality_scenes(needs_service=False),
    "MunicipalService/StartService": service_municipality_scenes(needs_service=True),
    "MunicipalService/EndService": service_municipality_scenes(needs_service=True),
    "MunicipalService/GetService": relationship_scenes(CLINICAL, a_service),
    "PathwayService/GetPathway": relationship_scenes(CLINICAL, a_pathway),
    "PathwayService/ExportFhir": relationship_scenes(CLINICAL, a_pathway),
    "PathwayService/ListPathways": {
        "OWN_ORGANISATION": Scene(MUNICIPALITY, the_municipalitys_patient),
        "blocked": Scene(MUNICIPALITY, chain(the_municipalitys_patient, blocks(MUNICIPALITY))),
        **for_everyone(the_municipalitys_patient, OrgKind.MUNICIPALITY),
    },
    "PathwayService/Statistics": {
        "OWN_ORGANISATION": Scene(MUNICIPALITY, the_municipalitys_patient),
        "OPERATOR": Scene(OPERATOR, the_municipalitys_patient),
        "blocked": Scene(MUNICIPALITY, chain(the_municipalitys_patient, blocks(MUNICIPALITY))),
        **for_everyone(the_municipalitys_patient, OrgKind.MUNICIPALITY),
    },
    "PathwayService/ListCancerPathwayShares": {
        "OWN_ORGANISATION": Scene(RECEIVING_HOSPITAL, nothing),
        "blocked": Scene(RECEIVING_HOSPITAL, blocks(RECEIVING_HOSPITAL)),
        **for_everyone(nothing, OrgKind.HOSPITAL),
    },
    "PathwayService/WatchPathway": relationship_scenes(CLINICAL, nothing),
    "RegistryService/RecordResidence": keeper_scenes(),
    "RegistryService/RecordTemporaryResidence": keeper_scenes(),
    "RegistryService/AssignFastlege": keeper_scenes(),
    "RegistryService/RecordDeath": {
        "STAY_HOSPITAL": Scene(HOSPITAL, admitted),
        "RESIDENCE_MUNICIPALITY": Scene(MUNICIPALITY, lives_in_municipality),
        "TEMPORARY_RESIDENCE_MUNICIPALITY": Scene(OTHER_MUNICIPALITY, stays_in_other_municipality),
        "REGISTER_KEEPER": Scene(REGISTER_ADAPTER, nothing),
        "expired": Scene(HOSPITAL, admitted_and_closed_long_ago),
        "blocked": Scene(HOSPITAL, chain(admitted, blocks(HOSPITAL))),
        **for_everyone(nothing, OrgKind.HOSPITAL),
    },
    "RegistryService/RegisterOrganisation": keeper_scenes(),
    "RegistryService/GetRegistration": keeper_scenes(the_municipalitys_patient),
    "RegistryService/ListOrganisations": {
        "ORGANISATION_DIRECTORY": Scene(GP, nothing),
        "blocked": Scene(GP, blocks(GP)),
        **for_everyone(nothing, OrgKind.HOSPITAL),
    },
    "AccessService/BlockAccess": keeper_scenes(blockable_caller=False),
    "AccessService/LiftBlock": keeper_scenes(a_block, blockable_caller=False),
    "AccessService/GetBlocks": keeper_scenes(blockable_caller=False),
    "AccessService/RequestEmergencyAccess": {
        "blocked": Scene(ER_DOCTOR, blocks(ER_DOCTOR)),
        **for_everyone(nothing, OrgKind.HOSPITAL),
    },
    "AccessService/ListEmergencyAccesses": {
        "SUPERVISOR": Scene(SUPERVISOR, nothing),
        "no-role": Scene(ER_DOCTOR, nothing),
        "blocked": Scene(SUPERVISOR, blocks(SUPERVISOR)),
        **for_everyone(nothing, OrgKind.HOSPITAL),
    },
    "AccessService/ListAccesses": for_everyone(nothing, OrgKind.HOSPITAL),
    "SubscriptionAdminService/CreateSubscription": operator_scenes(nothing),
    # The list holds the other cells' subscriptions, all created before the first cell.
    "SubscriptionAdminService/ListSubscriptions": operator_scenes(nothing),
    "SubscriptionAdminService/PauseSubscription": operator_scenes(a_subscription),
    "SubscriptionAdminService/ResumeSubscription": operator_scenes(a_paused_subscription),
    "SubscriptionAdminService/DeleteSubscription": operator_scenes(a_subscription),
    "EventStreamService/Subscribe": {
        "OWN_ORGANISATION": Scene(VENDOR, a_subscription),
        "blocked": Scene(VENDOR, chain(a_subscription, blocks(VENDOR))),
        **for_everyone(a_subscription, OrgKind.HOSPITAL),
    },
}


# --- the one call of each cell ----------------------------------------------------------------


def purpose(caller: Actor) -> common_pb2.AccessPurpose.ValueType:
    if caller.org_kind is OrgKind.CITIZEN:
        return common_pb2.ACCESS_PURPOSE_CITIZEN_INSIGHT
    if caller in EMERGENCY_DOCTORS.values():
        return common_pb2.ACCESS_PURPOSE_EMERGENCY_CARE
    return common_pb2.ACCESS_PURPOSE_CARE_COORDINATION


def this_month(s: Story) -> pathway_pb2.YearMonth:
    return pathway_pb2.YearMonth(year=s.world.today.year, month=s.world.today.month)


OK_RECEIPT = common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK)
METFORMIN = medications_pb2.Medication(atc_code="A10BA02", name="Metformin")

#: The request of each call, valid for the state its story brought the patient to.
REQUESTS: dict[str, Callable[[Story, Actor], Message]] = {
    "ReferralService/SendReferral": lambda s, _: referrals_pb2.SendReferralRequest(
        metadata=s.meta(),
        patient=s.pb,
        receiver_her_id=RECEIVING_HOSPITAL.her_id,
        reason="Hjertebank og tungpust",
        priority=referrals_pb2.REFERRAL_PRIORITY_ROUTINE,
    ),
    "ReferralService/RecordReferralReceipt": lambda s, _: (
        referrals_pb2.RecordReferralReceiptRequest(
            metadata=s.meta(), referral_id=s.referral, receipt=OK_RECEIPT
        )
    ),
    "ReferralService/AcceptReferral": lambda s, _: referrals_pb2.AcceptReferralRequest(
        metadata=s.meta(),
        referral_id=s.referral,
        planned_date=date_pb(s.world.today + timedelta(days=21)),
    ),
    "ReferralService/RejectReferral": lambda s, _: referrals_pb2.RejectReferralRequest(
        metadata=s.meta(), referral_id=s.referral, reason="Ikke indikasjon for utredning"
    ),
    "ReferralService/ForwardReferral": lambda s, _: referrals_pb2.ForwardReferralRequest(
        metadata=s.meta(),
        referral_id=s.referral,
        new_receiver_her_id=FORWARD_HOSPITAL.her_id,
        reason="Kortere ventetid",
    ),
    "ReferralService/CompleteReferral": lambda s, _: referrals_pb2.CompleteReferralRequest(
        metadata=s.meta(), referral_id=s.referral
    ),
    "ReferralService/RecordCancerPathwayMilestone": lambda s, _: (
        referrals_pb2.RecordCancerPathwayMilestoneRequest(
            metadata=s.meta(),
            referral_id=s.referral,
            milestone=referrals_pb2.CANCER_PATHWAY_MILESTONE_FIRST_APPOINTMENT,
        )
    ),
    "ReferralService/EndCancerPathway": lambda s, _: referrals_pb2.EndCancerPathwayRequest(
        metadata=s.meta(),
        referral_id=s.referral,
        reason=referrals_pb2.CANCER_PATHWAY_END_REASON_PATIENT_DECLINED,
    ),
    "ReferralService/ResendReferral": lambda s, _: referrals_pb2.ResendReferralRequest(
        metadata=s.meta(),
        referral_id=s.referral,
        reason="Brystsmerter ved anstrengelse, ønsker vurdering (rettet)",
    ),
    "ReferralService/CancelReferral": lambda s, _: referrals_pb2.CancelReferralRequest(
        metadata=s.meta(), referral_id=s.referral, reason="Pasienten er bedre"
    ),
    "ReferralService/GetReferral": lambda s, _: referrals_pb2.GetReferralRequest(
        referral_id=s.referral
    ),
    "AdmissionService/AdmitPatient": lambda s, _: admissions_pb2.AdmitPatientRequest(
        metadata=s.meta(),
        patient=s.pb,
        ward="Akuttmottaket",
        admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
        municipality_her_id=MUNICIPALITY.her_id,
    ),
    "AdmissionService/SendAdmissionNotice": lambda s, _: admissions_pb2.SendAdmissionNoticeRequest(
        metadata=s.meta(), stay_id=s.stay
    ),
    "AdmissionService/RecordAdmissionReport": lambda s, _: (
        admissions_pb2.RecordAdmissionReportRequest(metadata=s.meta(), stay_id=s.stay)
    ),
    "AdmissionService/SendHealthInformation": lambda s, _: (
        admissions_pb2.SendHealthInformationRequest(metadata=s.meta(), stay_id=s.stay)
    ),
    "AdmissionService/RecordMessageReceipt": lambda s, _: (
        admissions_pb2.RecordMessageReceiptRequest(
            metadata=s.meta(), stay_id=s.stay, message_id=s.message, receipt=OK_RECEIPT
        )
    ),
    "AdmissionService/TransferPatient": lambda s, _: admissions_pb2.TransferPatientRequest(
        metadata=s.meta(),
        stay_id=s.stay,
        to_hospital_her_id=RECEIVING_HOSPITAL.her_id,
        to_ward="Kardiologisk sengepost",
    ),
    "AdmissionService/CloseStay": lambda s, _: admissions_pb2.CloseStayRequest(
        metadata=s.meta(), stay_id=s.stay, reason=admissions_pb2.STAY_CLOSE_REASON_DISCHARGED
    ),
    "AdmissionService/GetStay": lambda s, _: admissions_pb2.GetStayRequest(stay_id=s.stay),
    "AdmissionService/ListStays": lambda s, _: admissions_pb2.ListStaysRequest(patient=s.pb),
    "DischargeService/DeclareReadyForDischarge": lambda s, _: (
        discharges_pb2.DeclareReadyForDischargeRequest(metadata=s.meta(), stay_id=s.stay)
    ),
    "DischargeService/AnswerReadiness": lambda s, _: discharges_pb2.AnswerReadinessRequest(
        metadata=s.meta(), stay_id=s.stay, can_receive=False
    ),
    "DischargeService/WithdrawReadiness": lambda s, _: discharges_pb2.WithdrawReadinessRequest(
        metadata=s.meta(), stay_id=s.stay, reason="Ny feber, trenger iv-antibiotika"
    ),
    "DischargeService/DischargePatient": lambda s, _: discharges_pb2.DischargePatientRequest(
        metadata=s.meta(),
        stay_id=s.stay,
        destination=discharges_pb2.DISCHARGE_DESTINATION_HOME,
    ),
    "DischargeService/SendEpicrisis": lambda s, _: discharges_pb2.SendEpicrisisRequest(
        metadata=s.meta(), stay_id=s.stay, to_her_id=GP.her_id
    ),
    "DischargeService/RecordMessageReceipt": lambda s, _: (
        discharges_pb2.RecordDischargeMessageReceiptRequest(
            metadata=s.meta(), stay_id=s.stay, message_id=s.message, receipt=OK_RECEIPT
        )
    ),
    "DischargeService/GetDischarge": lambda s, _: discharges_pb2.GetDischargeRequest(
        stay_id=s.stay
    ),
    "CorrespondenceService/SendMessage": lambda s, _: (
        correspondence_pb2.SendCorrespondenceMessageRequest(
            metadata=s.meta(),
            patient=s.pb,
            message_type=correspondence_pb2.CORRESPONDENCE_MESSAGE_TYPE_DIALOGUE,
            text="Pasienten har fått trygghetsalarm",
        )
    ),
    "CorrespondenceService/AnswerRequest": lambda s, _: (
        correspondence_pb2.AnswerCorrespondenceRequestRequest(
            metadata=s.meta(),
            correspondence_id=s.correspondence,
            message_type=correspondence_pb2.CORRESPONDENCE_MESSAGE_TYPE_REQUEST_ANSWER,
            text="Ingen endringer siden forrige epikrise",
        )
    ),
    "CorrespondenceService/RecordMessageReceipt": lambda s, _: (
        correspondence_pb2.RecordCorrespondenceMessageReceiptRequest(
            metadata=s.meta(),
            correspondence_id=s.correspondence,
            message_id=s.message,
            receipt=OK_RECEIPT,
        )
    ),
    "CorrespondenceService/GetCorrespondence": lambda s, _: (
        correspondence_pb2.GetCorrespondenceRequest(correspondence_id=s.correspondence)
    ),
    "MedicationService/PrescribeMedication": lambda s, _: (
        medications_pb2.PrescribeMedicationRequest(
            metadata=s.meta(), patient=s.pb, medication=METFORMIN, dose="500 mg x 2"
        )
    ),
    "MedicationService/ChangeDose": lambda s, _: medications_pb2.ChangeDoseRequest(
        metadata=s.meta(), patient=s.pb, entry_id=s.entry, dose="1000 mg x 2"
    ),
    "MedicationService/PauseMedication": lambda s, _: medications_pb2.PauseMedicationRequest(
        metadata=s.meta(), patient=s.pb, entry_id=s.entry, reason="Kontrastundersøkelse"
    ),
    "MedicationService/ResumeMedication": lambda s, _: medications_pb2.ResumeMedicationRequest(
        metadata=s.meta(), patient=s.pb, entry_id=s.entry
    ),
    "MedicationService/DiscontinueMedication": lambda s, _: (
        medications_pb2.DiscontinueMedicationRequest(
            metadata=s.meta(), patient=s.pb, entry_id=s.entry, reason="Nedsatt nyrefunksjon"
        )
    ),
    "MedicationService/ReconcileMedicationList": lambda s, _: (
        medications_pb2.ReconcileMedicationListRequest(
            metadata=s.meta(),
            patient=s.pb,
            sources=[medications_pb2.RECONCILIATION_SOURCE_PATIENT],
        )
    ),
    "MedicationService/GetMedicationList": lambda s, _: medications_pb2.GetMedicationListRequest(
        patient=s.pb
    ),
    "PathwayService/GetPathway": lambda s, caller: pathway_pb2.GetPathwayRequest(
        patient=s.pb, purpose=purpose(caller)
    ),
    "PathwayService/ExportFhir": lambda s, caller: pathway_pb2.ExportFhirRequest(
        patient=s.pb, purpose=purpose(caller)
    ),
    "PathwayService/ListPathways": lambda s, caller: pathway_pb2.ListPathwaysRequest(
        municipality_her_id=MUNICIPALITY.her_id, purpose=purpose(caller)
    ),
    "PathwayService/Statistics": lambda s, _: pathway_pb2.StatisticsRequest(
        municipality_her_id=MUNICIPALITY.her_id, from_month=this_month(s), to_month=this_month(s)
    ),
    "PathwayService/ListCancerPathwayShares": lambda s, _: (
        pathway_pb2.ListCancerPathwaySharesRequest(
            hospital_her_id=RECEIVING_HOSPITAL.her_id,
            from_day=date_pb(s.world.today - timedelta(days=30)),
            to_day=date_pb(s.world.today),
            purpose=common_pb2.ACCESS_PURPOSE_QUALITY_IMPROVEMENT,
        )
    ),
    "PathwayService/WatchPathway": lambda s, caller: pathway_pb2.WatchPathwayRequest(
        patient=s.pb, purpose=purpose(caller)
    ),
    "MunicipalService/DecideService": lambda s, _: municipal_pb2.DecideServiceRequest(
        metadata=s.meta(),
        patient=s.pb,
        kind=municipal_pb2.MUNICIPAL_SERVICE_KIND_HOME_NURSING,
        starts_on=date_pb(s.world.today),
    ),
    "MunicipalService/StartService": lambda s, _: municipal_pb2.StartServiceRequest(
        metadata=s.meta(), service_id=s.service
    ),
    "MunicipalService/EndService": lambda s, _: municipal_pb2.EndServiceRequest(
        metadata=s.meta(),
        service_id=s.service,
        reason=municipal_pb2.SERVICE_END_REASON_PATIENT_DECLINED,
    ),
    "MunicipalService/GetService": lambda s, _: municipal_pb2.GetServiceRequest(
        service_id=s.service
    ),
    "RegistryService/RecordDeath": lambda s, _: registry_pb2.RecordDeathRequest(
        metadata=s.meta(), patient=s.pb
    ),
    "RegistryService/RecordResidence": lambda s, _: registry_pb2.RecordResidenceRequest(
        metadata=s.meta(),
        patient=s.pb,
        municipality_her_id=MUNICIPALITY.her_id,
        valid_from=date_pb(date(2010, 1, 1)),
    ),
    "RegistryService/RecordTemporaryResidence": lambda s, _: (
        registry_pb2.RecordTemporaryResidenceRequest(
            metadata=s.meta(),
            patient=s.pb,
            municipality_her_id=OTHER_MUNICIPALITY.her_id,
            valid_from=date_pb(s.world.today),
            valid_to=date_pb(s.world.today + timedelta(days=60)),
        )
    ),
    "RegistryService/AssignFastlege": lambda s, _: registry_pb2.AssignFastlegeRequest(
        metadata=s.meta(),
        patient=s.pb,
        gp_her_id=GP.her_id,
        gp_hpr_number=GP.hpr or "",
        valid_from=date_pb(date(2010, 1, 1)),
    ),
    "RegistryService/RegisterOrganisation": lambda s, _: registry_pb2.RegisterOrganisationRequest(
        metadata=s.meta(),
        her_id=str(700_000 + s.index),
        kind=common_pb2.ORGANISATION_KIND_HOSPITAL,
        name=f"Sykehuset Matrise, post {s.index}",
    ),
    "RegistryService/GetRegistration": lambda s, _: registry_pb2.GetRegistrationRequest(
        patient=s.pb
    ),
    "RegistryService/ListOrganisations": lambda s, _: registry_pb2.ListOrganisationsRequest(
        her_ids=[HOSPITAL.her_id, MUNICIPALITY.her_id]
    ),
    "AccessService/BlockAccess": lambda s, _: registry_pb2.BlockAccessRequest(
        metadata=s.meta(), patient=s.pb, her_id=STRANGERS[OrgKind.GP].her_id
    ),
    "AccessService/LiftBlock": lambda s, _: registry_pb2.LiftBlockRequest(
        metadata=s.meta(), patient=s.pb, block_id=s.block
    ),
    "AccessService/GetBlocks": lambda s, _: registry_pb2.GetBlocksRequest(patient=s.pb),
    "AccessService/RequestEmergencyAccess": lambda s, _: registry_pb2.RequestEmergencyAccessRequest(
        patient=s.pb,
        reason=common_pb2.EMERGENCY_REASON_PATIENT_CANNOT_CONSENT,
        justification="Forvirret pasient på legevakt, trenger oversikt over legemidler",
    ),
    "AccessService/ListEmergencyAccesses": lambda s, _: registry_pb2.ListEmergencyAccessesRequest(),
    "AccessService/ListAccesses": lambda s, _: registry_pb2.ListAccessesRequest(patient=s.pb),
    "SubscriptionAdminService/CreateSubscription": lambda s, _: create_subscription(s),
    "SubscriptionAdminService/ListSubscriptions": lambda s, _: (
        streams_pb2.ListSubscriptionsRequest()
    ),
    "SubscriptionAdminService/PauseSubscription": lambda s, _: streams_pb2.SubscriptionCommand(
        metadata=s.meta(), name=s.subscription
    ),
    "SubscriptionAdminService/ResumeSubscription": lambda s, _: streams_pb2.SubscriptionCommand(
        metadata=s.meta(), name=s.subscription
    ),
    "SubscriptionAdminService/DeleteSubscription": lambda s, _: streams_pb2.SubscriptionCommand(
        metadata=s.meta(), name=s.subscription
    ),
    "EventStreamService/Subscribe": lambda s, _: streams_pb2.SubscribeRequest(
        subscription=s.subscription
    ),
}


@dataclass
class Matrix:
    world: World
    stories: dict[tuple[str, str], Story]

    def caller(self, scene: Scene, story: Story) -> Actor:
        if scene.caller == THE_PATIENT:
            return Actor.citizen(story.fnr)
        assert isinstance(scene.caller, Actor)
        return scene.caller

    def call(self, rpc: str, story: Story, caller: Actor) -> tuple[grpc.StatusCode, str]:
        """The cell's one call: its status and the refusal's (or failure's) words."""
        request = REQUESTS[rpc](story, caller)
        if rpc == "PathwayService/WatchPathway":
            return self.watch(story, request, caller)
        if rpc == "EventStreamService/Subscribe":  # granted: its first item (a heartbeat)
            stream = self.world.clients.events.Subscribe(request, metadata=auth(caller), timeout=30)
            try:
                next(stream)
            except grpc.RpcError as err:
                return err.code(), err.details() or ""
            finally:
                stream.cancel()
            return OK, ""
        service, method = rpc.split("/")
        stub = getattr(self.world.clients, STUB_OF[service])
        try:
            getattr(stub, method)(request, metadata=auth(caller), timeout=30)
        except grpc.RpcError as err:
            return err.code(), err.details() or ""
        return OK, ""

    def watch(self, story: Story, request: Message, caller: Actor) -> tuple[grpc.StatusCode, str]:
        """A watch is granted when the first change of the pathway arrives; the pathway changes
        (again, every half second) until the stream answers, since a change made before the
        server subscribed the stream is not sent."""
        assert isinstance(request, pathway_pb2.WatchPathwayRequest)
        stream = self.world.clients.pathway.WatchPathway(request, metadata=auth(caller), timeout=30)
        answer: dict[str, Any] = {}

        def read() -> None:
            try:
                answer["change"] = next(stream)
            except grpc.RpcError as err:
                answer["error"] = err

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        poked = 0.0

        def answered() -> bool:
            nonlocal poked
            if answer:
                return True
            if time.monotonic() - poked > 0.5:
                story.pathway_changes()
                poked = time.monotonic()
            return False

        try:
            wait_for(answered, timeout=25, what="the watched pathway's first change or refusal")
        finally:
            stream.cancel()
            reader.join(timeout=5)
        if "error" in answer:
            return answer["error"].code(), answer["error"].details() or ""
        assert answer["change"].patient.value == story.fnr
        return OK, ""

    def basis_recorded(self, rpc: str, story: Story, caller: Actor) -> str | None:
        """The ground the audit log has for the caller's latest granted call of `rpc`."""
        for row in self.world.system.audit_rows(story.patient):
            if row.call == rpc and row.actor_her_id == caller.her_id and row.outcome == "OK":
                return str(row.basis)
        return None


# --- telling every story before the first cell -----------------------------------------------


def folded(world: World, facts: list[Fact]) -> bool:
    """Whether the pathway projector has folded every fact (one query per table)."""
    keys = sorted({f.patient_key for f in facts})
    if not keys:
        return True
    r, b = relationships, access_blocks
    with world.system.engine.connect() as conn:
        held = set()
        ended = set()
        for key, her_id, basis, valid_to in conn.execute(
            sa.select(r.c.patient_key, r.c.her_id, r.c.basis, r.c.valid_to).where(
                r.c.patient_key.in_(keys)
            )
        ):
            held.add((key, her_id, basis))
            if valid_to is not None:
                ended.add((key, her_id, basis))
        blocked = set(
            conn.execute(sa.select(b.c.patient_key, b.c.her_id).where(b.c.patient_key.in_(keys)))
        )
        pathways = set(
            conn.execute(
                sa.select(readmodel.patients.c.patient_key).where(
                    readmodel.patients.c.patient_key.in_(keys)
                )
            ).scalars()
        )

    def done(f: Fact) -> bool:
        if f.kind == "block":
            return (f.patient_key, f.her_id) in blocked
        if f.kind == "pathway":
            return f.patient_key in pathways
        return (f.patient_key, f.her_id, f.basis) in (ended if f.ended else held)

    return all(done(f) for f in facts)


def tell(world: World) -> dict[tuple[str, str], Story]:
    """Every cell's story, all at once: each runs to its next wait, then all wait together for
    the projector, and so on; at the end everything every story did has been folded."""
    stories: dict[tuple[str, str], Story] = {}
    running: list[Iterator[None]] = []
    cells = [(rpc, situation) for rpc, situation in CELLS if situation in SCENES.get(rpc, {})]
    for index, (rpc, situation) in enumerate(cells):
        story = stories[(rpc, situation)] = Story(world, index)
        running.append(chain(SCENES[rpc][situation].story)(story))
    while running:
        waiting = []
        for told in running:
            try:
                next(told)
                waiting.append(told)
            except StopIteration:
                pass
        facts = [f for s in stories.values() for f in s.facts]
        wait_for(partial(folded, world, facts), timeout=120, what="the stories' facts folded")
        running = waiting
    return stories


@pytest.fixture(scope="module")
def matrix(
    broker: Tenant, amqp_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Matrix]:
    base = tmp_path_factory.mktemp("access-matrix")
    urls = {name: f"sqlite:///{base}/{name}.sqlite" for name in (*STORES, STREAMS.name)}
    queue = projector_queue("matrix")
    with (
        running_system(urls, broker, queue) as system,
        streams_server(broker, urls, system) as (streams, events_port),
    ):
        clients = Clients.of(system, streams, events_port)
        world = World(system, clients, datetime.now(UTC).replace(microsecond=0))
        world.now -= timedelta(minutes=1)
        the_directory_knows_the_vendor(world)
        yield Matrix(world, tell(world))
    drain_queue(amqp_uri, queue)


def the_directory_knows_the_vendor(world: World) -> None:
    """The register adapter registers the vendor and the municipality its system serves: a
    subscription names organisations of the directory (the access facts, once folded)."""
    for who, kind, name in (
        (VENDOR, common_pb2.ORGANISATION_KIND_REGISTRY, "Matrise EPJ AS"),
        (SERVED, common_pb2.ORGANISATION_KIND_MUNICIPALITY, "Matrise kommune"),
    ):
        world.clients.registry.RegisterOrganisation(
            registry_pb2.RegisterOrganisationRequest(
                metadata=support.meta(f"matrix-organisation-{who.her_id}", world.now),
                her_id=who.her_id,
                kind=kind,
                name=name,
            ),
            metadata=auth(REGISTER_ADAPTER),
        )
    o = organisations
    query = sa.select(o.c.her_id).where(o.c.her_id.in_([VENDOR.her_id, SERVED.her_id]))

    def known() -> bool:
        with world.system.engine.connect() as conn:
            return len(conn.execute(query).all()) == 2

    wait_for(known, timeout=60, what="the vendor and the municipality it serves in the directory")


# --- the tests ----------------------------------------------------------------------------------


def test_the_matrix_has_a_row_for_every_call_and_a_cell_for_every_situation() -> None:
    """A new call, or a new ground of a call, fails here until the matrix says what it
    expects of it (and tells the story it is checked on)."""
    assert set(EXPECTED) == {rule.name for rule in RULES.values()}
    for rule in RULES.values():
        assert set(EXPECTED[rule.name]) == situations_of(rule), rule.name
        assert set(SCENES[rule.name]) == set(EXPECTED[rule.name]), rule.name
        assert rule.name in REQUESTS


def recorded_ground(rule: Rule, situation: str) -> str | None:
    """The ground a granted cell's call must be on the audit log with (None: not checked)."""
    if rule.target.kind in (
        TargetKind.NONE,
        TargetKind.OWN_ORGANISATION,
        TargetKind.ORGANISATION,
        TargetKind.OWNED,
    ):
        return None  # no patient: the log's rows name none
    if situation in Basis.__members__:
        return situation
    grounds = {v: k for k, v in AS_SITUATIONS.items()}
    if situation in grounds and grounds[situation] in rule.bases:
        return grounds[situation].value
    return None


@pytest.mark.parametrize(("rpc", "situation"), CELLS, ids=[f"{r}-{s}" for r, s in CELLS])
def test_cell(matrix: Matrix, rpc: str, situation: str) -> None:
    """The cell's caller, after its story, makes the call once: the answer is the table's; a
    refusal says nothing but the generic words; a grant is logged on the cell's ground."""
    expected = EXPECTED[rpc][situation]
    story = matrix.stories[(rpc, situation)]
    caller = matrix.caller(SCENES[rpc][situation], story)
    code, details = matrix.call(rpc, story, caller)
    assert code == expected, (
        f"{rpc} by {caller.org_kind.value} {caller.her_id or 'citizen'} ({situation}): "
        f"{code.name} {details!r}, expected {expected.name}"
    )
    if code == DENIED:
        assert details == REFUSAL
    ground = recorded_ground(RULES[f"/carepath.v1.{rpc}"], situation)
    if code == OK and ground is not None:
        assert matrix.basis_recorded(rpc, story, caller) == ground
