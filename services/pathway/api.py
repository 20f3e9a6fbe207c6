"""PathwayService over gRPC: the patient's timeline and summary from the read model."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
from sqlalchemy.engine import Engine

from carepath.v1 import common_pb2, pathway_pb2, pathway_pb2_grpc, referrals_pb2
from services.medications.api import list_to_pb as medication_list_to_pb
from services.pathway import readmodel as rm
from services.pathway import views
from services.pathway.discharges import PaymentPeriod, payment_periods
from services.pathway.feed import ChangeFeed
from services.pathway.messages import PloMessage
from shared import api, rules
from shared.auth import OrgKind
from shared.errors import InvalidArgument, NotFound, NotPermitted
from shared.grpc_server import current_actor

#: Read-model organisation kinds ("HOSPITAL", ...) are OrgKind values.
LEVEL_TO_PB: dict[str, common_pb2.OrganisationKind.ValueType] = {
    kind.value: pb for kind, pb in api.ORG_KIND_TO_PB.items()
}
PB_TO_LEVEL = {v: k for k, v in LEVEL_TO_PB.items()}


def _enum(enum_type: Any, prefix: str, value: str | None) -> Any:
    """The proto enum number of a read-model string, 0 (UNSPECIFIED) for none."""
    return enum_type.Value(f"{prefix}_{value}") if value else 0


def _purpose(request: Any) -> str:
    purpose = str(request.purpose).strip()
    if not purpose:
        raise InvalidArgument("purpose", "is required (why the pathway is read; audited)")
    if len(purpose) > 200:
        raise InvalidArgument("purpose", "must be at most 200 characters")
    return purpose


def _own_municipality(her_id: str, field: str) -> str:
    her_id = api.her_id(her_id, field)
    actor = current_actor()
    if actor.org_kind is not OrgKind.MUNICIPALITY or actor.her_id != her_id:
        raise NotPermitted("only the municipality itself may list or watch its patients")
    return her_id


def _require_home(home_municipality: str | None, caller_her_id: str) -> None:
    if home_municipality != caller_her_id:
        raise NotPermitted("a municipality reads only the pathways of its own patients")


def _patient_of(key: str) -> common_pb2.PatientIdentifier:
    system, value = key.split("|", 1)
    return common_pb2.PatientIdentifier(system=system, value=value)


def _milestone_to_pb(m: dict[str, Any], now: str) -> pathway_pb2.CancerMilestoneStatus:
    """A milestone is late when reached after its due time, or still not reached past it."""
    pb = pathway_pb2.CancerMilestoneStatus(
        milestone=_enum(
            referrals_pb2.CancerPathwayMilestone, "CANCER_PATHWAY_MILESTONE", m["milestone"]
        ),
        standard_days=m["standard_days"],
        late=bool(m["due"]) and (m["reached_at"] or now) > m["due"],
        treatment=_enum(referrals_pb2.CancerTreatment, "CANCER_TREATMENT", m["treatment"]),
    )
    for field in ("segment_start", "due", "reached_at"):
        if m[field]:
            getattr(pb, field).CopyFrom(api.timestamp(m[field]))
    return pb


def _task_to_pb(t: Any, now: str) -> pathway_pb2.OpenTask:
    return pathway_pb2.OpenTask(
        task_id=t["task_id"],
        kind=_enum(pathway_pb2.TaskKind, "TASK_KIND", t["kind"]),
        description=t["description"],
        waiting_on=common_pb2.Organisation(
            her_id=t["waiting_on_her_id"],
            kind=LEVEL_TO_PB.get(t["waiting_on_kind"], common_pb2.ORGANISATION_KIND_UNSPECIFIED),
        ),
        since=api.timestamp(t["since"]),
        due=api.timestamp(t["due"]),
        breached=t["due"] < now,
        aggregate_id=t["aggregate_id"],
    )


def _message_to_pb(m: PloMessage) -> pathway_pb2.MessageStatus:
    return pathway_pb2.MessageStatus(
        event_id=m.event_id,
        name=m.name,
        to=common_pb2.Organisation(her_id=m.to_her_id, kind=LEVEL_TO_PB[m.to_kind]),
        sent_at=api.timestamp(m.sent_at),
        receipt=_enum(common_pb2.AppRecStatus, "APP_REC_STATUS", m.status),
    )


def _location_to_pb(patient: Any) -> pathway_pb2.Location:
    pb = pathway_pb2.Location(
        kind=_enum(pathway_pb2.LocationKind, "LOCATION_KIND", patient["location_kind"]),
        her_id=patient["location_her_id"] or "",
        ward=patient["location_ward"] or "",
    )
    if patient["location_since"]:
        pb.since.CopyFrom(api.timestamp(patient["location_since"]))
    return pb


def _worklist_filter(request: pathway_pb2.ListPathwaysRequest) -> views.WorklistFilter:
    if request.waiting_on and request.waiting_on not in PB_TO_LEVEL:
        raise InvalidArgument("waiting_on", "is not a known kind of organisation")
    if request.location_kind and request.location_kind not in pathway_pb2.LocationKind.values():
        raise InvalidArgument("location_kind", "is not a known kind of place")
    query = request.patient_query.strip()
    if query and not (query.isdigit() and len(query) <= 11):
        raise InvalidArgument("patient_query", "must be 1–11 digits of the patient's identifier")
    return views.WorklistFilter(
        only_with_open_tasks=request.only_with_open_tasks,
        overdue_at=datetime.now(UTC) if request.only_overdue else None,
        waiting_on_kind=PB_TO_LEVEL.get(request.waiting_on),
        location_kind=(
            pathway_pb2.LocationKind.Name(request.location_kind).removeprefix("LOCATION_KIND_")
            if request.location_kind
            else None
        ),
        only_ready_for_discharge=request.only_ready_for_discharge,
        patient_prefix=query,
    )


def _payment_to_pb(period: PaymentPeriod) -> pathway_pb2.PaymentPeriod:
    pb = pathway_pb2.PaymentPeriod(
        stay_id=period.stay_id,
        municipality_her_id=period.municipality_her_id,
        ready_on=api.date_to_pb(period.ready_on),
        until=api.date_to_pb(period.until),
        days=(period.until - period.ready_on).days,
        ongoing=period.ongoing,
    )
    try:
        pb.amount_nok = rules.payment_days(period.ready_on, period.until).amount_nok
    except rules.MissingRule as exc:
        pb.amount_unavailable_reason = str(exc)
    return pb


#: How long a WatchPathway stream waits for a change before it checks that its caller is
#: still there (the change feed itself is read by one poller, services/pathway/feed.py).
WATCH_WAIT_SECONDS = 1.0
MAX_PAGE_SIZE = 200
#: Each WatchPathway stream holds a server thread while it is open (no database connection:
#: it waits on the shared change feed).
MAX_WORKERS = 128


class PathwayServicer(pathway_pb2_grpc.PathwayServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._feed = ChangeFeed(engine)

    def GetPathway(
        self, request: pathway_pb2.GetPathwayRequest, context: grpc.ServicerContext
    ) -> pathway_pb2.Pathway:
        patient = api.patient(request)
        purpose = _purpose(request)
        key = rm.patient_key(patient)
        as_of = request.as_of.ToDatetime(tzinfo=UTC) if request.HasField("as_of") else None
        reader = current_actor()
        views.record_read(self._engine, key, reader, purpose, "GetPathway")
        view = views.get_pathway(self._engine, key, as_of)
        if view is None:
            raise NotFound("no pathway for this patient")
        if reader.org_kind is OrgKind.MUNICIPALITY:
            _require_home(view.patient["municipality_her_id"], reader.her_id)
        moment = as_of or datetime.now(UTC)
        medications_at = (
            request.medications_at.ToDatetime(tzinfo=UTC)
            if request.HasField("medications_at")
            else None
        )
        reply = pathway_pb2.Pathway(patient=api.patient_to_pb(patient), as_of=api.timestamp(moment))
        for row in view.timeline:
            actor = {"her_id": row["actor_her_id"], "org_kind": row["level"]}
            if row["actor_hpr"]:
                actor["hpr"] = row["actor_hpr"]
            reply.timeline.append(
                pathway_pb2.TimelineEntry(
                    event_id=row["event_id"],
                    event_type=row["event_type"],
                    source=row["source"],
                    level=LEVEL_TO_PB.get(row["level"], common_pb2.ORGANISATION_KIND_UNSPECIFIED),
                    actor=api.actor_to_pb(actor) if row["level"] in LEVEL_TO_PB else None,
                    occurred_at=api.timestamp(row["occurred_at"]),
                    recorded_at=api.timestamp(row["recorded_at"]),
                    aggregate_id=row["aggregate_id"],
                    summary=row["summary"],
                )
            )
        reply.summary.open_referrals = int(view.patient["open_referrals"])
        for r in view.referrals:
            reply.summary.referrals.append(
                pathway_pb2.ReferralSummary(
                    referral_id=r["referral_id"],
                    state=_enum(referrals_pb2.ReferralState, "REFERRAL_STATE", r["state"]),
                    priority=_enum(
                        referrals_pb2.ReferralPriority, "REFERRAL_PRIORITY", r["priority"]
                    ),
                    cancer_pathway=_enum(
                        referrals_pb2.CancerPathway, "CANCER_PATHWAY", r["cancer_pathway"]
                    ),
                    sender_her_id=r["sender_her_id"],
                    receiver_her_id=r["receiver_her_id"],
                    sent_at=api.timestamp(r["sent_at"]),
                    updated_at=api.timestamp(r["updated_at"]),
                    open=bool(r["is_open"]),
                    cancer_milestones=[
                        _milestone_to_pb(m, rm.utc_iso(moment))
                        for m in r["cancer_milestones"] or []
                    ],
                )
            )
        reply.location.CopyFrom(_location_to_pb(view.patient))
        reply.municipality_her_id = view.patient["municipality_her_id"] or ""
        folded = view.pathway
        for discharge in folded.discharges:
            for period in payment_periods(discharge, moment.astimezone(rules.OSLO).date()):
                reply.payments.append(_payment_to_pb(period))
        reply.messages.extend(_message_to_pb(m) for m in folded.messages)
        for stay in sorted(folded.stays, key=lambda s: (s.admitted_at, s.stay_id)):
            stay_pb = pathway_pb2.StayPeriod(
                stay_id=stay.stay_id,
                hospital_her_id=stay.hospital_her_id,
                ward=stay.ward,
                admitted_at=api.timestamp(stay.admitted_at),
            )
            if stay.closed_at:
                stay_pb.closed_at.CopyFrom(api.timestamp(stay.closed_at))
            reply.stays.append(stay_pb)
        medications = views.medication_list(view.history, medications_at)
        if medications is not None:
            reply.medications.CopyFrom(medication_list_to_pb(medications))
        reply.tasks.extend(_task_to_pb(t, rm.utc_iso(moment)) for t in view.tasks)
        return reply

    def ListPathways(
        self, request: pathway_pb2.ListPathwaysRequest, context: grpc.ServicerContext
    ) -> pathway_pb2.ListPathwaysResponse:
        municipality = _own_municipality(request.municipality_her_id, "municipality_her_id")
        purpose = _purpose(request)
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
        size = request.page_size or 50
        try:
            offset = int(request.page_token or "0")
        except ValueError as exc:
            raise InvalidArgument("page_token", "is not a token from a previous page") from exc
        if offset < 0:
            raise InvalidArgument("page_token", "is not a token from a previous page")
        where = _worklist_filter(request)
        rows = views.list_pathways(self._engine, municipality, where, size + 1, offset)
        page, more = rows[:size], len(rows) > size
        keys = [r["patient_key"] for r, _ in page]
        now = rm.utc_iso(datetime.now(UTC))
        views.record_reads(self._engine, keys, current_actor(), purpose, "ListPathways")
        reply = pathway_pb2.ListPathwaysResponse(next_page_token=str(offset + size) if more else "")
        for r, tasks in page:
            open_tasks = [_task_to_pb(t, now) for t in tasks]
            item = pathway_pb2.PathwayListItem(
                patient=_patient_of(r["patient_key"]),
                open_tasks=int(r["open_tasks"]),
                overdue_tasks=sum(1 for t in open_tasks if t.breached),
                open_referrals=int(r["open_referrals"]),
                last_event_at=api.timestamp(r["last_occurred_at"]),
                location=_location_to_pb(r),
                tasks=open_tasks,
            )
            if r["next_due"]:
                item.next_due.CopyFrom(api.timestamp(r["next_due"]))
            if r["ready_for_discharge_since"]:
                item.ready_for_discharge_since.CopyFrom(
                    api.timestamp(r["ready_for_discharge_since"])
                )
            reply.items.append(item)
        return reply

    def WatchPathway(
        self, request: pathway_pb2.WatchPathwayRequest, context: grpc.ServicerContext
    ) -> Iterator[pathway_pb2.PathwayChange]:
        purpose = _purpose(request)
        target = request.WhichOneof("target")
        key: str | None = None
        municipality: str | None = None
        if target == "patient":
            key = rm.patient_key(api.patient(request))
        elif target == "municipality_her_id":
            municipality = _own_municipality(request.municipality_her_id, "municipality_her_id")
        else:
            raise InvalidArgument("target", "give a patient or a municipality_her_id")
        actor = current_actor()
        if key is not None:
            views.record_read(self._engine, key, actor, purpose, "WatchPathway")
            if actor.org_kind is OrgKind.MUNICIPALITY:
                _require_home(views.home_municipality(self._engine, key), actor.her_id)
        subscription = self._feed.subscribe(key, municipality)
        try:
            while context.is_active():
                changes = subscription.take(timeout=WATCH_WAIT_SECONDS)
                if municipality is not None and changes:
                    keys = sorted({c["patient_key"] for c in changes})
                    views.record_reads(self._engine, keys, actor, purpose, "WatchPathway")
                for change in changes:
                    yield pathway_pb2.PathwayChange(
                        patient=_patient_of(change["patient_key"]),
                        changed_at=api.timestamp(change["changed_at"]),
                        sequence=int(change["sequence"]),
                    )
        finally:
            self._feed.unsubscribe(subscription)


SERVICE_NAMES = (pathway_pb2.DESCRIPTOR.services_by_name["PathwayService"].full_name,)


def register(engine: Engine) -> Any:
    def _register(server: grpc.Server) -> None:
        pathway_pb2_grpc.add_PathwayServiceServicer_to_server(PathwayServicer(engine), server)

    return _register
