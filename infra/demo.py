"""Demo data and a small pathway client for `make run`.

    python infra/demo.py load [--then-wait]   # load the demo patient, print its pathway
    python infra/demo.py show --patient 12034248069 [--system urn:oid:...]

The demo is an 84-year-old (synthetic fødselsnummer) whose GP refers her to hospital A under
the colorectal cancer pathway; A's receipt reports an error in part, A forwards the referral
to hospital B, B receives and accepts it with a planned date. A second, earlier referral was
cancelled by the GP. Command ids are fixed, so loading twice changes nothing.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from datetime import UTC, datetime, timedelta

import grpc
from carepath.v1 import common_pb2, pathway_pb2, pathway_pb2_grpc, referrals_pb2, referrals_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared import config
from shared.auth import Actor, OrgKind, bearer_metadata, mint_token
from shared.ids import FNR_SYSTEM

PATIENT = "12034248069"
GP = Actor(her_id="8134021", org_kind=OrgKind.GP, hpr="9144900")
HOSPITAL_A = Actor(her_id="59", org_kind=OrgKind.HOSPITAL, hpr="4210953")
HOSPITAL_B = Actor(her_id="90234", org_kind=OrgKind.HOSPITAL, hpr="5632187")
COORDINATOR = Actor(her_id="4201", org_kind=OrgKind.MUNICIPALITY, hpr="1203921")


def wait_healthy(address: str, timeout: float = 60.0) -> grpc.Channel:
    channel = grpc.insecure_channel(address)
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


def meta(command_id: str, when: datetime) -> common_pb2.CommandMetadata:
    return common_pb2.CommandMetadata(
        command_id=f"demo-{command_id}", occurred_at=ts(when), correlation_id="demo-pathway"
    )


def load(referrals: referrals_pb2_grpc.ReferralServiceStub, secret: str) -> int:
    """Send the demo's commands; returns how many events they record."""
    creds = {a.her_id: bearer_metadata(mint_token(a, secret)) for a in (GP, HOSPITAL_A, HOSPITAL_B)}
    patient = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=PATIENT)
    start = datetime(2026, 9, 1, 8, 30, tzinfo=UTC)

    first = referrals.SendReferral(
        referrals_pb2.SendReferralRequest(
            metadata=meta("send-1", start - timedelta(days=20)),
            patient=patient,
            receiver_her_id=HOSPITAL_A.her_id,
            reason="Vedvarende ryggsmerter, ønsker vurdering.",
            priority=referrals_pb2.REFERRAL_PRIORITY_ROUTINE,
        ),
        metadata=creds[GP.her_id],
    )
    referrals.CancelReferral(
        referrals_pb2.CancelReferralRequest(
            metadata=meta("cancel-1", start - timedelta(days=18)),
            referral_id=first.referral_id,
            reason="Bedring etter fysioterapi.",
        ),
        metadata=creds[GP.her_id],
    )
    second = referrals.SendReferral(
        referrals_pb2.SendReferralRequest(
            metadata=meta("send-2", start),
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
            metadata=meta("receipt-a", start + timedelta(hours=1)),
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
            metadata=meta("forward-b", start + timedelta(days=1, hours=2)),
            referral_id=rid,
            new_receiver_her_id=HOSPITAL_B.her_id,
            reason="Kortere ventetid for koloskopi.",
        ),
        metadata=creds[HOSPITAL_A.her_id],
    )
    referrals.RecordReferralReceipt(
        referrals_pb2.RecordReferralReceiptRequest(
            metadata=meta("receipt-b", start + timedelta(days=1, hours=3)),
            referral_id=rid,
            receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK),
        ),
        metadata=creds[HOSPITAL_B.her_id],
    )
    planned = (start + timedelta(days=8)).date()
    referrals.AcceptReferral(
        referrals_pb2.AcceptReferralRequest(
            metadata=meta("accept-b", start + timedelta(days=2)),
            referral_id=rid,
            planned_date=common_pb2.Date(year=planned.year, month=planned.month, day=planned.day),
        ),
        metadata=creds[HOSPITAL_B.her_id],
    )
    return 7  # two sends, a cancel, two receipts, a forward, an accept


def fetch(
    pathway: pathway_pb2_grpc.PathwayServiceStub, secret: str, system: str, value: str
) -> pathway_pb2.Pathway:
    return pathway.GetPathway(
        pathway_pb2.GetPathwayRequest(
            patient=common_pb2.PatientIdentifier(system=system, value=value),
            purpose="care coordination",
        ),
        metadata=bearer_metadata(mint_token(COORDINATOR, secret)),
        timeout=10,
    )


def show(reply: pathway_pb2.Pathway) -> None:
    kinds = {1: "KOMMUNE", 2: "FASTLEGE", 3: "SYKEHUS"}
    print(f"Pathway: {len(reply.timeline)} events, {reply.summary.open_referrals} open referral(s)")
    for entry in reply.timeline:
        when = entry.occurred_at.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M")
        print(f"  {when}  {kinds.get(entry.level, '?'):8}  {entry.summary}")
    for r in reply.summary.referrals:
        state = referrals_pb2.ReferralState.Name(r.state).removeprefix("REFERRAL_STATE_")
        print(f"  referral {r.referral_id}: {state} at HER {r.receiver_her_id}")
    for t in reply.tasks:
        due = t.due.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M")
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

    secret = config.jwt_secret()
    pathway = pathway_pb2_grpc.PathwayServiceStub(wait_healthy(config.grpc_address("pathway")))
    if args.command == "show":
        show(fetch(pathway, secret, args.system, args.patient))
        return

    referrals = referrals_pb2_grpc.ReferralServiceStub(
        wait_healthy(config.grpc_address("referrals"))
    )
    expected = load(referrals, secret)
    deadline = time.monotonic() + 60
    while True:
        try:
            reply = fetch(pathway, secret, FNR_SYSTEM, PATIENT)
            if len(reply.timeline) >= expected:
                break
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        if time.monotonic() > deadline:
            sys.exit("demo: the pathway did not show the demo events within 60 s")
        time.sleep(0.3)
    show(reply)
    print(
        "\ncarepath is running.\n"
        f"  ReferralService  {config.grpc_address('referrals')}   "
        f"PathwayService  {config.grpc_address('pathway')}   (gRPC, reflection on)\n"
        f"  Show the demo pathway:  .venv/bin/python infra/demo.py show --patient {PATIENT}\n"
        '  Mint a token:           make token ARGS="--her-id 4201 --kind MUNICIPALITY"\n'
        "  Stop everything:        Ctrl-C",
        flush=True,
    )
    if args.then_wait:  # honcho stops every process when one exits: stay until told to stop
        signals = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        signal.sigwait(signals)


if __name__ == "__main__":
    main()
