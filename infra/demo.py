"""Demo data and a small pathway client for `make run`.

    python infra/demo.py load [--then-wait]   # load the demo patient, print its pathway
    python infra/demo.py show --patient 12834248024 [--system urn:oid:...]

The demo is an 84-year-old whose GP refers her to hospital A under
the colorectal cancer pathway; A's receipt reports an error in part, A forwards the referral
to hospital B, B receives and accepts it with a planned date and follows the cancer pathway to
surgery. A second, earlier referral was cancelled by the GP. In November she is admitted
acutely, declared ready for discharge on a Friday, and the municipality receives her on Tuesday
in a short-term nursing-home place (korttidsopphold), which the municipality decided the day
before and starts when she arrives; a medication changed in hospital is reconciled by the GP.
Before a long-term place is decided, the municipality asks her fastlege (a Forespørsel, to
the GP the registers name) and the GP answers two days later (Svar på forespørsel), each
message receipted by its receiver.
Command ids are fixed, so loading twice changes nothing.

The patient and the organisations come from the registers first: `make run` imports the
synthetic extract infra/demo-registry.json (`python -m services.registry import ...`), so the
municipality, the fastlege and every organisation's name are known before the first command.
Relationships recorded by one service reach the others' access policy through the pathway's
projection within moments; the demo retries a command its caller is refused until they have.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

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
)
from shared import config, grpc_client
from shared.actors import Actor, OrgKind
from shared.auth import bearer_metadata
from shared.ids import FNR_SYSTEM
from shared.issuer import Issuer, dev_issuer
from shared.signals import stop_event
from shared.times import OSLO

#: The synthetic register extract `make run` imports before the demo loads.
REGISTRY_FILE = Path(__file__).with_name("demo-registry.json")
#: The demo's patient, as the extract names her: a synthetic fødselsnummer (month + 80, the
#: national test population's convention; shared/ids.py), which `make run` allows
#: (CAREPATH_TEST_DATA=allow) and a production process refuses.
PATIENT: str = json.loads(REGISTRY_FILE.read_text())["patients"][0]["patient"]["value"]
GP = Actor(her_id="8134021", org_kind=OrgKind.GP, hpr="9144900")
NURSING_HOME = "88001"  # a municipal short-term place
T = TypeVar("T")
HOSPITAL_A = Actor(her_id="59", org_kind=OrgKind.HOSPITAL, hpr="4210953")
HOSPITAL_B = Actor(her_id="90234", org_kind=OrgKind.HOSPITAL, hpr="5632187")
COORDINATOR = Actor(her_id="4201", org_kind=OrgKind.MUNICIPALITY, hpr="1203921")


def wait_healthy(address: str, timeout: float = 60.0) -> grpc.Channel:
    channel = grpc_client.channel(address)
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return channel
        except grpc.RpcError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"demo: {address} did not become healthy within {timeout:.0f}s")
        time.sleep(0.3)


def ts(value: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(value)
    return t


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A clinical time in Norway (Europe/Oslo)."""
    return datetime(year, month, day, hour, minute, tzinfo=OSLO)


def meta(command_id: str, when: datetime) -> common_pb2.CommandMetadata:
    return common_pb2.CommandMetadata(
        command_id=f"demo-{command_id}", occurred_at=ts(when), correlation_id="demo-pathway"
    )


@dataclass
class Clients:
    referrals: referrals_pb2_grpc.ReferralServiceStub
    admissions: admissions_pb2_grpc.AdmissionServiceStub
    medications: medications_pb2_grpc.MedicationServiceStub
    discharges: discharges_pb2_grpc.DischargeServiceStub
    municipal: municipal_pb2_grpc.MunicipalServiceStub
    correspondence: correspondence_pb2_grpc.CorrespondenceServiceStub


def load(clients: Clients, issuer: Issuer) -> int:
    """Send the demo's commands; returns how many public events they record."""
    creds = {
        a.her_id: bearer_metadata(issuer.mint(a)) for a in (GP, HOSPITAL_A, HOSPITAL_B, COORDINATOR)
    }
    patient = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=PATIENT)
    referrals, admissions, medications = clients.referrals, clients.admissions, clients.medications
    discharges = clients.discharges

    # The GP's medication list for an 84-year-old with home nursing (the GP is her fastlege
    # in the registers: retried until that relationship has reached the policy).
    listed = once_related(
        lambda: medications.PrescribeMedication(
            medications_pb2.PrescribeMedicationRequest(
                metadata=meta("rx-metformin", at(2024, 6, 3, 9)),
                patient=patient,
                medication=medications_pb2.Medication(atc_code="A10BA02", name="Metformin"),
                dose="500 mg x 2",
            ),
            metadata=creds[GP.her_id],
        )
    )
    listed = medications.PrescribeMedication(
        medications_pb2.PrescribeMedicationRequest(
            metadata=meta("rx-ramipril", at(2024, 6, 3, 9, 5)),
            patient=patient,
            medication=medications_pb2.Medication(atc_code="C09AA05", name="Ramipril"),
            dose="5 mg x 1",
        ),
        metadata=creds[GP.her_id],
    )
    ramipril = next(e.entry_id for e in listed.entries if e.medication.atc_code == "C09AA05")

    # A referral the GP withdrew, then an urgent colorectal cancer-pathway referral that the
    # first hospital forwards and the second accepts.
    first = referrals.SendReferral(
        referrals_pb2.SendReferralRequest(
            metadata=meta("send-1", at(2024, 8, 12, 8, 30)),
            patient=patient,
            receiver_her_id=HOSPITAL_A.her_id,
            reason="Vedvarende ryggsmerter, ønsker vurdering.",
            priority=referrals_pb2.REFERRAL_PRIORITY_ROUTINE,
        ),
        metadata=creds[GP.her_id],
    )
    referrals.CancelReferral(
        referrals_pb2.CancelReferralRequest(
            metadata=meta("cancel-1", at(2024, 8, 14, 8, 30)),
            referral_id=first.referral_id,
            reason="Bedring etter fysioterapi.",
        ),
        metadata=creds[GP.her_id],
    )
    second = referrals.SendReferral(
        referrals_pb2.SendReferralRequest(
            metadata=meta("send-2", at(2024, 9, 2, 8, 30)),
            patient=patient,
            receiver_her_id=HOSPITAL_A.her_id,
            reason="Blod i avføringen og vekttap siste 3 måneder. Spørsmål om kreft i tykktarm.",
            priority=referrals_pb2.REFERRAL_PRIORITY_URGENT,
            cancer_pathway=referrals_pb2.CANCER_PATHWAY_COLORECTAL,
        ),
        metadata=creds[GP.her_id],
    )
    rid = second.referral_id
    referrals.RecordReferralReceipt(
        referrals_pb2.RecordReferralReceiptRequest(
            metadata=meta("receipt-a", at(2024, 9, 2, 9, 30)),
            referral_id=rid,
            receipt=common_pb2.AppRec(
                status=common_pb2.APP_REC_STATUS_OK_ERROR_IN_PART,
                errors=[common_pb2.AppRecError(code="E35", description="Vedlegg mangler")],
            ),
        ),
        metadata=creds[HOSPITAL_A.her_id],
    )
    referrals.ForwardReferral(
        referrals_pb2.ForwardReferralRequest(
            metadata=meta("forward-b", at(2024, 9, 3, 10, 30)),
            referral_id=rid,
            new_receiver_her_id=HOSPITAL_B.her_id,
            reason="Kortere ventetid for koloskopi.",
        ),
        metadata=creds[HOSPITAL_A.her_id],
    )
    referrals.RecordReferralReceipt(
        referrals_pb2.RecordReferralReceiptRequest(
            metadata=meta("receipt-b", at(2024, 9, 3, 11, 30)),
            referral_id=rid,
            receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK),
        ),
        metadata=creds[HOSPITAL_B.her_id],
    )
    second = referrals.AcceptReferral(
        referrals_pb2.AcceptReferralRequest(
            metadata=meta("accept-b", at(2024, 9, 4, 8, 30)),
            referral_id=rid,
            planned_date=common_pb2.Date(year=2024, month=9, day=10),
        ),
        metadata=creds[HOSPITAL_B.her_id],
    )
    # Hospital B follows the cancer pathway: seen on the planned day, the investigation ends
    # two days over its 12-day standard with surgery decided, and surgery starts in time.
    cancer = referrals_pb2
    for command_id, moment, milestone, treatment in (
        (
            "first-appointment",
            at(2024, 9, 10, 9, 0),
            cancer.CANCER_PATHWAY_MILESTONE_FIRST_APPOINTMENT,
            0,
        ),
        (
            "investigation-completed",
            at(2024, 9, 24, 14, 0),
            cancer.CANCER_PATHWAY_MILESTONE_INVESTIGATION_COMPLETED,
            cancer.CANCER_TREATMENT_SURGERY,
        ),
        ("surgery", at(2024, 10, 4, 8, 0), cancer.CANCER_PATHWAY_MILESTONE_TREATMENT_START, 0),
    ):
        second = referrals.RecordCancerPathwayMilestone(
            referrals_pb2.RecordCancerPathwayMilestoneRequest(
                metadata=meta(command_id, moment),
                referral_id=rid,
                milestone=milestone,
                treatment=treatment,
            ),
            metadata=creds[HOSPITAL_B.her_id],
        )

    # Acute admission on Tuesday 12 November; the municipality's innleggelsesrapport arrives
    # before the hospital's admission notice; Helseopplysninger within 24 hours.
    stay = admissions.AdmitPatient(
        admissions_pb2.AdmitPatientRequest(
            metadata=meta("admit", at(2024, 11, 12, 14, 10)),
            patient=patient,
            ward="Medisinsk sengepost 3",
            admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
            municipality_her_id=COORDINATOR.her_id,
            municipal_services_likely=True,
            existing_service_user=True,
        ),
        metadata=creds[HOSPITAL_A.her_id],
    )
    sid = stay.stay_id
    stay = admissions.RecordAdmissionReport(
        admissions_pb2.RecordAdmissionReportRequest(
            metadata=meta("report", at(2024, 11, 12, 15, 0)), stay_id=sid
        ),
        metadata=creds[COORDINATOR.her_id],
    )
    stay = admissions.SendAdmissionNotice(
        admissions_pb2.SendAdmissionNoticeRequest(
            metadata=meta("notice", at(2024, 11, 12, 16, 0)), stay_id=sid
        ),
        metadata=creds[HOSPITAL_A.her_id],
    )
    for message in stay.messages:
        receiver = HOSPITAL_A if message.to_her_id == HOSPITAL_A.her_id else COORDINATOR
        stay = admissions.RecordMessageReceipt(
            admissions_pb2.RecordMessageReceiptRequest(
                metadata=meta(f"ack-{message.message_id}", at(2024, 11, 12, 16, 30)),
                stay_id=sid,
                message_id=message.message_id,
                receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK),
            ),
            metadata=creds[receiver.her_id],
        )
    stay = admissions.SendHealthInformation(
        admissions_pb2.SendHealthInformationRequest(
            metadata=meta("helseopplysninger", at(2024, 11, 13, 9, 0)), stay_id=sid
        ),
        metadata=creds[HOSPITAL_A.her_id],
    )
    # In hospital the Ramipril dose is lowered (low blood pressure): the hospital of the stay
    # may, once its stay has reached the medications service's policy.
    listed = once_related(
        lambda: medications.ChangeDose(
            medications_pb2.ChangeDoseRequest(
                metadata=meta("dose-ramipril", at(2024, 11, 13, 11, 0)),
                patient=patient,
                entry_id=ramipril,
                dose="2.5 mg x 1",
                reason="Lavt blodtrykk under innleggelsen",
            ),
            metadata=creds[HOSPITAL_A.her_id],
        )
    )

    # Ready for discharge on Friday 15 November; the municipality cannot receive her until
    # Tuesday; discharged to a short-term nursing-home place; epikrise to GP and municipality.
    # discharges learns of the stay from admissions events: retry while it catches up.
    ready = once_related(
        lambda: discharges.DeclareReadyForDischarge(
            discharges_pb2.DeclareReadyForDischargeRequest(
                metadata=meta("ready", at(2024, 11, 15, 10, 0)),
                stay_id=sid,
                # What the regulation asks the readiness notice to say (the municipality's
                # duty to pay depends on it): status, functional level, course, follow-up.
                status="Pneumoni behandlet; ingen nye problemstillinger.",
                functional_level="Går med rullator; trenger hjelp til personlig stell.",
                expected_course="Stabil; videre mobilisering over 2–3 uker.",
                follow_up_needs="Korttidsplass for opptrening; fastlege kontrollerer CRP.",
            ),
            metadata=creds[HOSPITAL_A.her_id],
        )
    )
    discharges.AnswerReadiness(
        discharges_pb2.AnswerReadinessRequest(
            metadata=meta("cannot-yet", at(2024, 11, 15, 13, 0)), stay_id=sid, can_receive=False
        ),
        metadata=creds[COORDINATOR.her_id],
    )
    discharges.AnswerReadiness(
        discharges_pb2.AnswerReadinessRequest(
            metadata=meta("tuesday", at(2024, 11, 18, 9, 0)),
            stay_id=sid,
            can_receive=True,
            receive_on=common_pb2.Date(year=2024, month=11, day=19),
        ),
        metadata=creds[COORDINATOR.her_id],
    )
    # The municipality decides the short-term place (vedtak om korttidsopphold) for Tuesday.
    place = clients.municipal.DecideService(
        municipal_pb2.DecideServiceRequest(
            metadata=meta("vedtak-korttid", at(2024, 11, 18, 10, 0)),
            patient=patient,
            kind=municipal_pb2.MUNICIPAL_SERVICE_KIND_SHORT_TERM_STAY,
            starts_on=common_pb2.Date(year=2024, month=11, day=19),
            institution_her_id=NURSING_HOME,
        ),
        metadata=creds[COORDINATOR.her_id],
    )
    discharges.DischargePatient(
        discharges_pb2.DischargePatientRequest(
            metadata=meta("discharge", at(2024, 11, 19, 11, 0)),
            stay_id=sid,
            destination=discharges_pb2.DISCHARGE_DESTINATION_SHORT_TERM_NURSING_HOME,
            destination_her_id=NURSING_HOME,
        ),
        metadata=creds[HOSPITAL_A.her_id],
    )
    for to in (GP.her_id, COORDINATOR.her_id):
        ready = discharges.SendEpicrisis(
            discharges_pb2.SendEpicrisisRequest(
                metadata=meta(f"epikrise-{to}", at(2024, 11, 19, 12, 0)), stay_id=sid, to_her_id=to
            ),
            metadata=creds[HOSPITAL_A.her_id],
        )
    # She arrives at the nursing home in the afternoon: the short-term place starts.
    place = clients.municipal.StartService(
        municipal_pb2.StartServiceRequest(
            metadata=meta("korttid-start", at(2024, 11, 19, 14, 0)), service_id=place.service_id
        ),
        metadata=creds[COORDINATOR.her_id],
    )
    # The GP reconciles the list after discharge.
    listed = medications.ReconcileMedicationList(
        medications_pb2.ReconcileMedicationListRequest(
            metadata=meta("reconcile", at(2024, 11, 21, 10, 0)),
            patient=patient,
            sources=[
                medications_pb2.RECONCILIATION_SOURCE_GP_RECORD,
                medications_pb2.RECONCILIATION_SOURCE_HOSPITAL_RECORD,
                medications_pb2.RECONCILIATION_SOURCE_PATIENT,
            ],
            note="Ramipril redusert under innleggelsen; fortsetter 2,5 mg.",
        ),
        metadata=creds[GP.her_id],
    )
    # Before a long-term place is decided, the municipality asks the fastlege; the GP answers.
    asked = clients.correspondence.SendMessage(
        correspondence_pb2.SendCorrespondenceMessageRequest(
            metadata=meta("foresporsel", at(2024, 11, 25, 10, 0)),
            patient=patient,
            message_type=correspondence_pb2.CORRESPONDENCE_MESSAGE_TYPE_REQUEST,
            text="Vurderer langtidsplass. Hvordan er kognisjon og gangfunksjon etter oppholdet?",
        ),
        metadata=creds[COORDINATOR.her_id],
    )
    cid = asked.correspondence_id
    clients.correspondence.RecordMessageReceipt(
        correspondence_pb2.RecordCorrespondenceMessageReceiptRequest(
            metadata=meta("foresporsel-kvittering", at(2024, 11, 25, 10, 5)),
            correspondence_id=cid,
            message_id=asked.messages[0].message_id,
            receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK),
        ),
        metadata=creds[GP.her_id],
    )
    answered = clients.correspondence.AnswerRequest(
        correspondence_pb2.AnswerCorrespondenceRequestRequest(
            metadata=meta("svar", at(2024, 11, 27, 14, 0)),
            correspondence_id=cid,
            message_type=correspondence_pb2.CORRESPONDENCE_MESSAGE_TYPE_REQUEST_ANSWER,
            text="Lett kognitiv svikt, går med rullator innendørs; falltendens.",
        ),
        metadata=creds[GP.her_id],
    )
    answered = clients.correspondence.RecordMessageReceipt(
        correspondence_pb2.RecordCorrespondenceMessageReceiptRequest(
            metadata=meta("svar-kvittering", at(2024, 11, 27, 14, 5)),
            correspondence_id=cid,
            message_id=answered.messages[-1].message_id,
            receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK),
        ),
        metadata=creds[COORDINATOR.her_id],
    )
    events = first.version + 1 + second.version + stay.version + listed.version + place.version
    events += answered.version  # every event of the correspondence is published
    events -= 1  # the stay's index event is internal (never published)
    events += ready.version - 1  # so is the discharge's opening event
    return events + 1  # the reaction in admissions closes the stay


def once_related(command: Callable[[], T], timeout: float = 30.0) -> T:
    """Run a command refused (PERMISSION_DENIED) until what it depends on, recorded by another
    service, has reached this one: the caller's relationship with the patient (registry,
    admissions) in the access policy, or a stay in discharges' view of the stays. The channel's
    retry policy (shared.grpc_client) already retries UNAVAILABLE and ABORTED; a refusal is not
    retryable for every client (it must not tell whether the patient or stay exists), only for
    this one, which has just recorded what it waits for (docs/errors.md)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return command()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.PERMISSION_DENIED or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def fetch(
    pathway: pathway_pb2_grpc.PathwayServiceStub, issuer: Issuer, system: str, value: str
) -> pathway_pb2.Pathway:
    return pathway.GetPathway(
        pathway_pb2.GetPathwayRequest(
            patient=common_pb2.PatientIdentifier(system=system, value=value),
            purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
        ),
        metadata=bearer_metadata(issuer.mint(COORDINATOR)),
        timeout=10,
    )


def show(reply: pathway_pb2.Pathway) -> None:
    kinds = {1: "KOMMUNE", 2: "FASTLEGE", 3: "SYKEHUS"}
    print(f"Pathway: {len(reply.timeline)} events, {reply.summary.open_referrals} open referral(s)")
    for entry in reply.timeline:
        when = entry.occurred_at.ToDatetime(tzinfo=UTC).astimezone(OSLO).strftime("%Y-%m-%d %H:%M")
        print(f"  {when}  {kinds.get(entry.level, '?'):8}  {entry.summary}")
    for r in reply.summary.referrals:
        state = referrals_pb2.ReferralState.Name(r.state).removeprefix("REFERRAL_STATE_")
        print(f"  referral {r.referral_id}: {state} at HER {r.receiver_her_id}")
    where = pathway_pb2.LocationKind.Name(reply.location.kind).removeprefix("LOCATION_KIND_")
    print(f"  now: {where} {reply.location.her_id} {reply.location.ward}".rstrip())
    for m in reply.medications.entries:
        state = medications_pb2.MedicationState.Name(m.state).removeprefix("MEDICATION_STATE_")
        print(f"  medication: {m.medication.name} {m.dose} ({state})")
    for p in reply.payments:
        amount = f"{p.amount_nok} NOK" if not p.amount_unavailable_reason else "amount unknown"
        owed = "" if p.payable else f" (not payable: {p.not_payable_text})"
        print(f"  utskrivningsklar: {p.days} payment day(s), {amount}{owed}")
    for s in reply.municipal_services:
        kind = municipal_pb2.MunicipalServiceKind.Name(s.kind).removeprefix(
            "MUNICIPAL_SERVICE_KIND_"
        )
        state = municipal_pb2.MunicipalServiceState.Name(s.state).removeprefix(
            "MUNICIPAL_SERVICE_STATE_"
        )
        print(f"  municipal service: {kind} ({state}) at HER {s.institution_her_id}".rstrip())
    for t in reply.tasks:
        due = t.due.ToDatetime(tzinfo=UTC).astimezone(OSLO).strftime("%Y-%m-%d %H:%M")
        flag = "OVERDUE" if t.breached else "open"
        print(f"  task ({flag}, due {due}, waiting on HER {t.waiting_on.her_id}): {t.description}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python infra/demo.py")
    sub = parser.add_subparsers(dest="command", required=True)
    load_cmd = sub.add_parser("load")
    load_cmd.add_argument("--then-wait", action="store_true", help="stay running (for honcho)")
    show_cmd = sub.add_parser("show")
    show_cmd.add_argument("--patient", default=PATIENT)
    show_cmd.add_argument("--system", default=FNR_SYSTEM)
    args = parser.parse_args()

    try:
        issuer = dev_issuer()  # the demo signs as `make run`'s development issuer
    except config.ConfigError as exc:
        raise SystemExit(f"carepath demo: {exc}") from None
    pathway = pathway_pb2_grpc.PathwayServiceStub(wait_healthy(config.grpc_address("pathway")))
    if args.command == "show":
        show(fetch(pathway, issuer, args.system, args.patient))
        return

    clients = Clients(
        referrals=referrals_pb2_grpc.ReferralServiceStub(
            wait_healthy(config.grpc_address("referrals"))
        ),
        admissions=admissions_pb2_grpc.AdmissionServiceStub(
            wait_healthy(config.grpc_address("admissions"))
        ),
        medications=medications_pb2_grpc.MedicationServiceStub(
            wait_healthy(config.grpc_address("medications"))
        ),
        discharges=discharges_pb2_grpc.DischargeServiceStub(
            wait_healthy(config.grpc_address("discharges"))
        ),
        municipal=municipal_pb2_grpc.MunicipalServiceStub(
            wait_healthy(config.grpc_address("municipal"))
        ),
        correspondence=correspondence_pb2_grpc.CorrespondenceServiceStub(
            wait_healthy(config.grpc_address("correspondence"))
        ),
    )
    expected = load(clients, issuer)
    deadline = time.monotonic() + 60
    while True:
        try:
            reply = fetch(pathway, issuer, FNR_SYSTEM, PATIENT)
            if len(reply.timeline) >= expected:
                break
        except grpc.RpcError as exc:
            if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED):
                raise
        if time.monotonic() > deadline:
            sys.exit("demo: the pathway did not show the demo events within 60 s")
        time.sleep(0.3)
    show(reply)
    print(
        f"\nPathway viewer for coordinators:  http://{config.http_address('viewer')}/  "
        f"(sign in as municipality {COORDINATOR.her_id}; patient {PATIENT})\n"
        "\ncarepath is running (gRPC, with reflection and health checking):\n"
        + "".join(
            f"  {name:12} {config.grpc_address(name)}\n"
            for name in (
                "pathway",
                "referrals",
                "admissions",
                "discharges",
                "medications",
                "registry",
                "municipal",
                "correspondence",
            )
        )
        + f"  Show the demo pathway:  .venv/bin/python infra/demo.py show --patient {PATIENT}\n"
        "  Mint a token:           "
        'make token ARGS="--her-id 4201 --kind MUNICIPALITY --hpr 1203921"\n'
        f"  The citizen's page:     http://{config.http_address('viewer')}/innbygger  "
        f"(development sign-in as {PATIENT})\n"
        "  Verify the audit log:   .venv/bin/python -m services.audit verify\n"
        "  Stop everything:        Ctrl-C",
        flush=True,
    )
    if args.then_wait:  # honcho stops every process when one exits: stay until told to stop
        stop_event().wait()


if __name__ == "__main__":
    main()
