"""From a gRPC command to the patient's pathway, on real parts: gRPC over loopback, the event
store (SQLite and PostgreSQL), the outbox relay, RabbitMQ, the projector and the read model."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from carepath.v1 import common_pb2, pathway_pb2, pathway_pb2_grpc, referrals_pb2, referrals_pb2_grpc
from services.pathway import migrate, readmodel
from services.pathway.rebuild import rebuild
from shared.ids import DNR_SYSTEM, FNR_SYSTEM
from shared.outbox import iter_all_envelopes
from shared.times import OSLO
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_GP, OTHER_HOSPITAL, OTHER_MUNICIPALITY
from tests.support import (
    NOW,
    Harness,
    auth,
    dump_read_model,
    events_in,
    make_fnr,
    meta,
    wait_for,
)

FNR = make_fnr(12, 3, 42, 480)
PATIENT = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=FNR)
REGISTERED = {"system": FNR_SYSTEM, "value": FNR}


def send_request(command_id: str = "send-1", **overrides: Any) -> referrals_pb2.SendReferralRequest:
    request = referrals_pb2.SendReferralRequest(
        metadata=meta(command_id, hours=-48),
        patient=PATIENT,
        receiver_her_id=HOSPITAL.her_id,
        reason="Blod i avføringen, vekttap.",
        priority=referrals_pb2.REFERRAL_PRIORITY_URGENT,
        cancer_pathway=referrals_pb2.CANCER_PATHWAY_COLORECTAL,
    )
    for key, value in overrides.items():
        if value is None:
            request.ClearField(key)
        else:
            setattr(request, key, value) if not hasattr(value, "CopyFrom") else getattr(
                request, key
            ).CopyFrom(value)
    return request


@pytest.fixture(autouse=True)
def registered(system: Harness) -> None:
    """The patient lives in the municipality and has the GP office as fastlege."""
    system.register(REGISTERED, municipality=MUNICIPALITY.her_id, gp=GP)


@pytest.fixture
def referrals(system: Harness) -> referrals_pb2_grpc.ReferralServiceStub:
    return referrals_pb2_grpc.ReferralServiceStub(system.channel(system.referrals_server))


@pytest.fixture
def pathway(system: Harness) -> pathway_pb2_grpc.PathwayServiceStub:
    return pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server))


def get_pathway(
    pathway: pathway_pb2_grpc.PathwayServiceStub, patient: common_pb2.PatientIdentifier = PATIENT
) -> pathway_pb2.Pathway:
    return pathway.GetPathway(
        pathway_pb2.GetPathwayRequest(
            patient=patient, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
        ),
        metadata=auth(GP),
    )


def pathway_with(
    pathway: pathway_pb2_grpc.PathwayServiceStub, events: int
) -> Callable[[], pathway_pb2.Pathway | None]:
    def check() -> pathway_pb2.Pathway | None:
        try:
            reply = get_pathway(pathway)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return reply if len(reply.timeline) >= events else None

    return check


def stored_events(system: Harness) -> int:
    return events_in(system.referrals_app)


def test_a_referral_received_and_accepted_shows_in_the_patients_pathway(
    system: Harness,
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    sent = referrals.SendReferral(send_request(), metadata=auth(GP))
    assert sent.state == referrals_pb2.REFERRAL_STATE_SENT
    referrals.RecordReferralReceipt(
        referrals_pb2.RecordReferralReceiptRequest(
            metadata=meta("rcpt", hours=-47),
            referral_id=sent.referral_id,
            receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK),
        ),
        metadata=auth(HOSPITAL),
    )
    planned = (NOW + timedelta(days=7)).date()
    accepted = referrals.AcceptReferral(
        referrals_pb2.AcceptReferralRequest(
            metadata=meta("acc", hours=-1),
            referral_id=sent.referral_id,
            planned_date=common_pb2.Date(year=planned.year, month=planned.month, day=planned.day),
        ),
        metadata=auth(HOSPITAL),
    )
    assert accepted.state == referrals_pb2.REFERRAL_STATE_ACCEPTED

    reply = wait_for(pathway_with(pathway, 3), what="three events in the pathway")
    assert [e.event_type for e in reply.timeline] == [
        "ReferralSent",
        "ReferralReceiptRecorded",
        "ReferralAccepted",
    ]
    assert [e.level for e in reply.timeline] == [
        common_pb2.ORGANISATION_KIND_GP,
        common_pb2.ORGANISATION_KIND_HOSPITAL,
        common_pb2.ORGANISATION_KIND_HOSPITAL,
    ]
    assert reply.timeline[0].actor.person.hpr_number == GP.hpr
    assert reply.summary.open_referrals == 1
    (summary,) = reply.summary.referrals
    assert summary.referral_id == sent.referral_id
    assert summary.state == referrals_pb2.REFERRAL_STATE_ACCEPTED
    assert summary.cancer_pathway == referrals_pb2.CANCER_PATHWAY_COLORECTAL


def test_the_timeline_follows_clinical_time_not_arrival(
    system: Harness,
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    late = referrals.SendReferral(
        send_request("late", metadata=meta("late", hours=-2)), metadata=auth(GP)
    )
    early = referrals.SendReferral(
        send_request("early", metadata=meta("early", hours=-200)), metadata=auth(GP)
    )
    reply = wait_for(pathway_with(pathway, 2), what="both referrals")
    assert [e.aggregate_id for e in reply.timeline] == [early.referral_id, late.referral_id]


def test_every_read_of_a_pathway_is_audited(
    system: Harness,
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    referrals.SendReferral(send_request(), metadata=auth(GP))
    wait_for(pathway_with(pathway, 1), what="the referral")
    before = len(system.audit_rows(REGISTERED))
    get_pathway(pathway)
    rows = system.audit_rows(REGISTERED)  # newest first
    assert len(rows) == before + 1
    last = rows[0]
    assert (last.actor_her_id, last.actor_kind, last.actor_hpr) == (GP.her_id, "GP", GP.hpr)
    assert (last.call, last.outcome) == ("PathwayService/GetPathway", "OK")
    assert (last.basis, last.purpose) == ("FASTLEGE", "CARE_COORDINATION")


def test_a_municipality_reads_only_its_own_patients_pathways(
    system: Harness,
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    """The patient lives in MUNICIPALITY: it reads the pathway as the residence municipality.
    Another municipality has no relationship with the patient and is refused (the attempt is
    audited like any read), for a single read and for a stream."""
    referrals.SendReferral(send_request(), metadata=auth(GP))
    wait_for(pathway_with(pathway, 1), what="the referral")
    own = pathway.GetPathway(
        pathway_pb2.GetPathwayRequest(
            patient=PATIENT, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
        ),
        metadata=auth(MUNICIPALITY),
    )
    assert own.access_basis == common_pb2.ACCESS_BASIS_RESIDENCE_MUNICIPALITY
    with pytest.raises(grpc.RpcError) as refused:
        pathway.GetPathway(
            pathway_pb2.GetPathwayRequest(
                patient=PATIENT, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
            ),
            metadata=auth(OTHER_MUNICIPALITY),
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    last = system.audit_rows(REGISTERED)[0]
    assert (last.actor_her_id, last.call, last.outcome, last.basis) == (
        OTHER_MUNICIPALITY.her_id,
        "PathwayService/GetPathway",
        "PERMISSION_DENIED",
        "",
    )
    watch = pathway.WatchPathway(
        pathway_pb2.WatchPathwayRequest(
            patient=PATIENT, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
        ),
        metadata=auth(OTHER_MUNICIPALITY),
        timeout=10,
    )
    with pytest.raises(grpc.RpcError) as refused:
        next(watch)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_repeated_command_returns_the_first_result_and_records_nothing(
    system: Harness, referrals: referrals_pb2_grpc.ReferralServiceStub
) -> None:
    first = referrals.SendReferral(send_request("same"), metadata=auth(GP))
    count = stored_events(system)
    again = referrals.SendReferral(send_request("same", reason="changed"), metadata=auth(GP))
    assert again == first
    assert stored_events(system) == count


def _bad_send(field: str, value: Any) -> referrals_pb2.SendReferralRequest:
    return send_request(**{field: value})


BAD_SENDS = [
    ("no metadata", _bad_send("metadata", None), "metadata"),
    (
        "no command id",
        _bad_send("metadata", common_pb2.CommandMetadata(command_id="")),
        "metadata.command_id",
    ),
    (
        "no clinical time",
        _bad_send("metadata", common_pb2.CommandMetadata(command_id="x")),
        "metadata.occurred_at",
    ),
    ("time in the future", send_request(metadata=meta("x", hours=2)), "metadata.occurred_at"),
    ("no patient", _bad_send("patient", None), "patient"),
    (
        "bad check digit",
        _bad_send(
            "patient",
            common_pb2.PatientIdentifier(
                system=FNR_SYSTEM, value=FNR[:-1] + str((int(FNR[-1]) + 1) % 10)
            ),
        ),
        "patient.value",
    ),
    (
        "fnr under the D-number system",
        _bad_send("patient", common_pb2.PatientIdentifier(system=DNR_SYSTEM, value=FNR)),
        "patient.value",
    ),
    (
        "unknown system",
        _bad_send("patient", common_pb2.PatientIdentifier(system="urn:oid:1.2.3", value=FNR)),
        "patient.value",
    ),
    ("letters in HER-id", _bad_send("receiver_her_id", "12AB"), "receiver_her_id"),
    ("no reason", _bad_send("reason", "   "), "reason"),
    ("no priority", _bad_send("priority", 0), "priority"),
    ("unknown cancer pathway", _bad_send("cancer_pathway", 42), "cancer_pathway"),
]


@pytest.mark.parametrize(("case", "request_", "field"), BAD_SENDS, ids=[c[0] for c in BAD_SENDS])
def test_bad_input_gets_invalid_argument_naming_the_field_and_changes_nothing(
    system: Harness,
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    case: str,
    request_: referrals_pb2.SendReferralRequest,
    field: str,
) -> None:
    before = stored_events(system)
    with pytest.raises(grpc.RpcError) as err:
        referrals.SendReferral(request_, metadata=auth(GP))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(f"{field}:"), err.value.details()
    assert FNR not in err.value.details()
    assert stored_events(system) == before


def test_impossible_transition_is_failed_precondition_naming_the_state(
    system: Harness, referrals: referrals_pb2_grpc.ReferralServiceStub
) -> None:
    sent = referrals.SendReferral(send_request(), metadata=auth(GP))
    before = stored_events(system)
    with pytest.raises(grpc.RpcError) as err:
        referrals.CompleteReferral(
            referrals_pb2.CompleteReferralRequest(
                metadata=meta("done"), referral_id=sent.referral_id
            ),
            metadata=auth(HOSPITAL),
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "SENT" in err.value.details()
    assert stored_events(system) == before


def test_another_hospital_gets_permission_denied(
    system: Harness, referrals: referrals_pb2_grpc.ReferralServiceStub
) -> None:
    sent = referrals.SendReferral(send_request(), metadata=auth(GP))
    before = stored_events(system)
    with pytest.raises(grpc.RpcError) as err:
        referrals.RecordReferralReceipt(
            referrals_pb2.RecordReferralReceiptRequest(
                metadata=meta("r"),
                referral_id=sent.referral_id,
                receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK),
            ),
            metadata=auth(OTHER_HOSPITAL),
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert stored_events(system) == before


def test_an_unknown_referral_is_refused_like_one_of_no_concern_and_a_malformed_id_invalid(
    referrals: referrals_pb2_grpc.ReferralServiceStub,
) -> None:
    """Whether a referral exists is itself personal data: an unknown id is refused, even for
    the patient's own fastlege, exactly as a referral the caller has no part in; never
    NOT_FOUND."""
    unknown_id = "0b7f5b57-1d0e-4f55-a1f3-1f1b8f1f0000"
    sent = referrals.SendReferral(send_request(), metadata=auth(GP))
    refusals = []
    for actor, referral_id in (
        (GP, unknown_id),
        (OTHER_GP, unknown_id),
        (OTHER_GP, sent.referral_id),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            referrals.GetReferral(
                referrals_pb2.GetReferralRequest(referral_id=referral_id), metadata=auth(actor)
            )
        refusals.append((refused.value.code(), refused.value.details()))
    assert refusals[0][0] == grpc.StatusCode.PERMISSION_DENIED
    assert refusals[0] == refusals[1] == refusals[2]
    with pytest.raises(grpc.RpcError) as err:
        referrals.GetReferral(
            referrals_pb2.GetReferralRequest(referral_id="nope"), metadata=auth(GP)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("referral_id:")


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer not-a-jwt"),), (("authorization", "Basic abc"),)],
    ids=["no token", "garbage token", "not bearer"],
)
def test_calls_without_a_valid_token_are_unauthenticated(
    system: Harness, referrals: referrals_pb2_grpc.ReferralServiceStub, metadata: Any
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        referrals.SendReferral(send_request(), metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert stored_events(system) == 0


def test_health_is_served_without_a_token(system: Harness) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(system.channel(system.referrals_server))
    reply = stub.Check(health_pb2.HealthCheckRequest(service="carepath.v1.ReferralService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_full_rebuild_from_the_store_equals_the_live_read_model(
    system: Harness,
    backend: dict[str, str],
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
    tmp_path: Any,
) -> None:
    first = referrals.SendReferral(send_request("a"), metadata=auth(GP))
    referrals.SendReferral(send_request("b", metadata=meta("b", hours=-30)), metadata=auth(GP))
    referrals.CancelReferral(
        referrals_pb2.CancelReferralRequest(
            metadata=meta("c", hours=-10), referral_id=first.referral_id, reason="Bedring"
        ),
        metadata=auth(GP),
    )
    wait_for(pathway_with(pathway, 3), what="three events")
    live = dump_read_model(system.engine)

    # The registry's events are rebuilt too: the access facts are folded from them.
    stores = {"referrals": system.referrals_app, "registry": system.apps["registry"]}
    registered = len(list(iter_all_envelopes("registry", system.apps["registry"])))
    rebuilt_engine = readmodel.create_engine(f"sqlite:///{tmp_path}/rebuilt.sqlite")
    migrate.upgrade(rebuilt_engine)
    assert rebuild(rebuilt_engine, stores) == 3 + registered
    assert dump_read_model(rebuilt_engine) == live
    # and in place, on the backend under test
    rebuild(system.engine, stores)
    assert dump_read_model(system.engine) == live


def receive(referrals: referrals_pb2_grpc.ReferralServiceStub, rid: str, hours_ago: float) -> None:
    referrals.RecordReferralReceipt(
        referrals_pb2.RecordReferralReceiptRequest(
            metadata=meta(f"rcpt-{rid}", hours=-hours_ago),
            referral_id=rid,
            receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK),
        ),
        metadata=auth(HOSPITAL),
    )


def test_a_received_referral_waits_on_the_hospital_for_assessment_within_ten_working_days(
    system: Harness,
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    sent = referrals.SendReferral(
        send_request(
            "fresh",
            metadata=meta("fresh", hours=-2),
            cancer_pathway=0,
            priority=referrals_pb2.REFERRAL_PRIORITY_ROUTINE,
        ),
        metadata=auth(GP),
    )
    receive(referrals, sent.referral_id, hours_ago=1)
    reply = wait_for(pathway_with(pathway, 2), what="the receipt")
    (task,) = reply.tasks
    assert task.kind == pathway_pb2.TASK_KIND_REFERRAL_ASSESSMENT
    assert task.waiting_on.her_id == HOSPITAL.her_id
    assert task.waiting_on.kind == common_pb2.ORGANISATION_KIND_HOSPITAL
    assert not task.breached
    # Ten working days after the day of receipt (in Oslo), to that day's end: 12 to 14
    # calendar days after it, more with holidays. Counted in days from the receipt's date,
    # not from the clock (a receipt late on a Sunday is due 12 days and under an hour later).
    due = task.due.ToDatetime(tzinfo=UTC).astimezone(OSLO)
    received_day = (NOW - timedelta(hours=1)).astimezone(OSLO).date()
    assert 12 <= (due.date() - received_day).days <= 20  # 10 working days + holidays
    assert (due + timedelta(microseconds=1)).time() == time(0)  # to the end of the day


def test_an_overdue_assessment_and_cancer_pathway_limit_are_flagged_as_breached(
    system: Harness,
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    sent = referrals.SendReferral(
        send_request("old", metadata=meta("old", hours=-(24 * 40))), metadata=auth(GP)
    )
    receive(referrals, sent.referral_id, hours_ago=24 * 30)
    reply = wait_for(pathway_with(pathway, 2), what="the receipt")
    kinds = {t.kind: t for t in reply.tasks}
    assert set(kinds) == {
        pathway_pb2.TASK_KIND_REFERRAL_ASSESSMENT,
        pathway_pb2.TASK_KIND_CANCER_FIRST_APPOINTMENT,
    }
    assert all(t.breached for t in reply.tasks)
    # the earliest due first: the assessment (3 working days, cancer suspected) before the
    # colorectal first appointment (9 calendar days)
    assert [t.kind for t in reply.tasks] == [
        pathway_pb2.TASK_KIND_REFERRAL_ASSESSMENT,
        pathway_pb2.TASK_KIND_CANCER_FIRST_APPOINTMENT,
    ]


def test_as_of_answers_what_was_known_then(
    system: Harness,
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    sent = referrals.SendReferral(send_request(), metadata=auth(GP))
    wait_for(pathway_with(pathway, 1), what="the referral")
    known_then = datetime.now(UTC)
    receive(referrals, sent.referral_id, hours_ago=47)
    now = wait_for(pathway_with(pathway, 2), what="the receipt")
    as_of = Timestamp()
    as_of.FromDatetime(known_then)
    then = pathway.GetPathway(
        pathway_pb2.GetPathwayRequest(
            patient=PATIENT, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION, as_of=as_of
        ),
        metadata=auth(GP),
    )
    assert [e.event_type for e in then.timeline] == ["ReferralSent"]
    assert [t.kind for t in then.tasks] == [pathway_pb2.TASK_KIND_REFERRAL_RECEIPT]
    assert then.summary.referrals[0].state == referrals_pb2.REFERRAL_STATE_SENT
    assert [e.event_type for e in now.timeline] == ["ReferralSent", "ReferralReceiptRecorded"]
    assert now.summary.referrals[0].state == referrals_pb2.REFERRAL_STATE_RECEIVED
    before_anything = Timestamp()
    before_anything.FromDatetime(NOW - timedelta(days=1000))
    with pytest.raises(grpc.RpcError) as err:
        pathway.GetPathway(
            pathway_pb2.GetPathwayRequest(
                patient=PATIENT,
                purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
                as_of=before_anything,
            ),
            metadata=auth(GP),
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_watching_a_patient_streams_each_change_of_the_pathway(
    system: Harness,
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    stream = pathway.WatchPathway(
        pathway_pb2.WatchPathwayRequest(
            patient=PATIENT, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
        ),
        metadata=auth(GP),
        timeout=30,
    )
    sent = referrals.SendReferral(send_request(), metadata=auth(GP))
    first = next(stream)
    assert first.patient.value == FNR
    receive(referrals, sent.referral_id, hours_ago=47)
    second = next(stream)
    assert second.sequence > first.sequence
    stream.cancel()
    assert len(get_pathway(pathway).timeline) == 2


def test_only_the_municipality_itself_may_list_its_patients(
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        pathway.ListPathways(
            pathway_pb2.ListPathwaysRequest(
                municipality_her_id="4202", purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
            ),
            metadata=auth(MUNICIPALITY),
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as err:
        pathway.ListPathways(
            pathway_pb2.ListPathwaysRequest(
                municipality_her_id=MUNICIPALITY.her_id,
                purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
                page_size=500,
            ),
            metadata=auth(MUNICIPALITY),
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("page_size:")


def test_a_referral_received_the_day_before_easter_is_due_after_the_easter_holidays(
    system: Harness,
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    sent = referrals.SendReferral(
        send_request(
            "easter",
            metadata=meta_at("easter", datetime(2026, 4, 2, 9, tzinfo=OSLO)),
            cancer_pathway=0,
            priority=referrals_pb2.REFERRAL_PRIORITY_ROUTINE,
        ),
        metadata=auth(GP),
    )
    referrals.RecordReferralReceipt(
        referrals_pb2.RecordReferralReceiptRequest(
            metadata=meta_at("easter-rcpt", datetime(2026, 4, 4, 10, tzinfo=OSLO)),
            referral_id=sent.referral_id,
            receipt=common_pb2.AppRec(status=common_pb2.APP_REC_STATUS_OK),
        ),
        metadata=auth(HOSPITAL),
    )
    reply = wait_for(pathway_with(pathway, 2), what="the receipt")
    (task,) = reply.tasks
    due = task.due.ToDatetime(tzinfo=UTC).astimezone(OSLO)
    # Easter Sunday and Monday are holidays: ten working days run 7–10, 13–17 and 20 April.
    assert (due.date().isoformat(), due.hour) == ("2026-04-20", 23)
    assert task.breached


def meta_at(command_id: str, when: datetime) -> common_pb2.CommandMetadata:
    ts = Timestamp()
    ts.FromDatetime(when)
    return common_pb2.CommandMetadata(command_id=command_id, occurred_at=ts)


def milestone(
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    referral_id: str,
    which: int,
    days_ago: float,
    treatment: int = 0,
) -> referrals_pb2.Referral:
    reply: referrals_pb2.Referral = referrals.RecordCancerPathwayMilestone(
        referrals_pb2.RecordCancerPathwayMilestoneRequest(
            metadata=meta(f"milestone-{which}", hours=-(24 * days_ago)),
            referral_id=referral_id,
            milestone=which,
            treatment=treatment,
        ),
        metadata=auth(HOSPITAL),
    )
    return reply


def test_a_colorectal_pathway_shows_each_segment_against_its_standard_time(
    system: Harness,
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    """Received 30 days ago; seen after 5 days (within 9); investigation completed 20 days later
    (late: 12); surgery (14) not started yet and due in 9 days."""
    sent = referrals.SendReferral(
        send_request("crc", metadata=meta("crc", hours=-(24 * 31))), metadata=auth(GP)
    )
    receive(referrals, sent.referral_id, hours_ago=24 * 30)
    m = referrals_pb2
    milestone(referrals, sent.referral_id, m.CANCER_PATHWAY_MILESTONE_FIRST_APPOINTMENT, 25)
    before = stored_events(system)
    with pytest.raises(grpc.RpcError) as refused:
        milestone(
            referrals, sent.referral_id, m.CANCER_PATHWAY_MILESTONE_INVESTIGATION_COMPLETED, 5
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "treatment" in str(refused.value.details())
    with pytest.raises(grpc.RpcError) as refused:
        milestone(referrals, sent.referral_id, m.CANCER_PATHWAY_MILESTONE_TREATMENT_START, 5)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert stored_events(system) == before
    reply = milestone(
        referrals,
        sent.referral_id,
        m.CANCER_PATHWAY_MILESTONE_INVESTIGATION_COMPLETED,
        5,
        m.CANCER_TREATMENT_SURGERY,
    )
    assert reply.cancer_treatment == m.CANCER_TREATMENT_SURGERY
    assert len(reply.cancer_milestones) == 2

    seen = wait_for(pathway_with(pathway, 4), what="the milestones")
    first, done, start = seen.summary.referrals[0].cancer_milestones
    assert (first.standard_days, done.standard_days, start.standard_days) == (9, 12, 14)
    assert not first.late and done.late and not start.late
    assert start.treatment == m.CANCER_TREATMENT_SURGERY and not start.HasField("reached_at")
    (task,) = [t for t in seen.tasks if t.kind == pathway_pb2.TASK_KIND_CANCER_TREATMENT_START]
    assert task.waiting_on.her_id == HOSPITAL.her_id and not task.breached
    assert timedelta(days=8) < task.due.ToDatetime(tzinfo=UTC) - NOW < timedelta(days=10)
    assert "kirurgi" in task.description


def test_a_long_timeline_is_read_a_page_at_a_time_and_the_pages_make_the_whole(
    system: Harness,
    referrals: referrals_pb2_grpc.ReferralServiceStub,
    pathway: pathway_pb2_grpc.PathwayServiceStub,
) -> None:
    """A home-care patient's years of events need not come in one answer: with page_size the
    timeline comes a page at a time (the rest of the answer whole on every page), and the
    pages, followed by their tokens, are exactly the whole timeline."""
    for i in range(3):
        sent = referrals.SendReferral(
            send_request(f"send-{i}", metadata=meta(f"send-{i}", hours=-50 + i)), metadata=auth(GP)
        )
        receive(referrals, sent.referral_id, hours_ago=40 - i)
    whole = wait_for(pathway_with(pathway, 6), what="three referrals and their receipts")
    request = pathway_pb2.GetPathwayRequest(
        patient=PATIENT, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION, page_size=4
    )
    first = pathway.GetPathway(request, metadata=auth(GP))
    assert len(first.timeline) == 4 and first.next_timeline_page_token
    assert first.tasks == whole.tasks and first.summary == whole.summary
    request.page_token, request.page_size = first.next_timeline_page_token, 2
    second = pathway.GetPathway(request, metadata=auth(GP))
    assert len(second.timeline) == 2 and not second.next_timeline_page_token
    assert [*first.timeline, *second.timeline] == list(whole.timeline)
    assert not whole.next_timeline_page_token  # no page_size: the whole timeline, no token

    other = pathway_pb2.GetPathwayRequest()
    other.CopyFrom(request)
    other.medications_at.FromDatetime(datetime.now(UTC))  # another request: not its token
    refused = [
        other,
        pathway_pb2.GetPathwayRequest(
            patient=PATIENT, purpose=request.purpose, page_token=request.page_token
        ),
        pathway_pb2.GetPathwayRequest(patient=PATIENT, purpose=request.purpose, page_size=501),
    ]
    for bad, field in zip(refused, ("page_token", "page_token", "page_size"), strict=True):
        with pytest.raises(grpc.RpcError) as err:
            pathway.GetPathway(bad, metadata=auth(GP))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (err.value.details() or "")
