"""PathwayService over gRPC: the patient's whole pathway mapped from the read model's rows
(services/pathway/views.py); nothing is folded on the read path, except an `as_of` answer,
which replays the history recorded by then."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import grpc
from sqlalchemy.engine import Engine

from carepath.v1 import (
    common_pb2,
    municipal_pb2,
    pathway_pb2,
    pathway_pb2_grpc,
    referrals_pb2,
    registry_pb2,
)
from services.pathway import fhir, statistics, views
from services.pathway.feed import ChangeFeed
from services.pathway.folding.discharges import NotPayable, PaymentSpan, not_payable_text
from services.pathway.folding.summaries import CORRESPONDENCE_NAMES
from services.pathway.statistics import Month
from shared import api, pages, rules
from shared.access.enforce import AccessControl, Resolver, current_call
from shared.access.facts import FactStore
from shared.access.model import MUNICIPALITY_MEMBERSHIP, Basis, Relationship
from shared.api import medication_list_to_pb
from shared.errors import InvalidArgument, NotFound, NotPermitted
from shared.times import OSLO, utc_iso

#: Read-model organisation kinds ("HOSPITAL", ...) are OrgKind values.
LEVEL_TO_PB: dict[str, common_pb2.OrganisationKind.ValueType] = {
    kind.value: pb for kind, pb in api.ORG_KIND_TO_PB.items()
}
PB_TO_LEVEL = {v: k for k, v in LEVEL_TO_PB.items()}


def _enum(enum_type: Any, prefix: str, value: str | None) -> Any:
    """The proto enum number of a read-model string, 0 (UNSPECIFIED) for none."""
    return enum_type.Value(f"{prefix}_{value}") if value else 0


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


def _cancer_total_to_pb(t: dict[str, Any], now: datetime) -> pathway_pb2.CancerPathwayTotal:
    """The pathway by its total; while the treatment has not started (and the pathway runs),
    the days so far at the answer's moment."""
    pb = pathway_pb2.CancerPathwayTotal(
        standard_total_days=t["standard_total_days"] or 0,
        measured=t["within_standard"] is not None,
        within_standard=bool(t["within_standard"]),
        end_reason=_enum(
            referrals_pb2.CancerPathwayEndReason, "CANCER_PATHWAY_END_REASON", t["end_reason"]
        ),
    )
    if t["elapsed_days"] is not None:
        pb.elapsed_days = t["elapsed_days"]
    elif not t["end_reason"]:
        pb.elapsed_days = max(
            0, rules.cancer_elapsed_days(datetime.fromisoformat(t["started_at"]), now)
        )
    for field in ("started_at", "treatment_started_at", "total_due", "ended_at"):
        if t[field]:
            getattr(pb, field).CopyFrom(api.timestamp(t[field]))
    return pb


def _share_to_pb(share: views.CancerShare) -> pathway_pb2.CancerPathwayShare:
    target = rules.cancer_target_share()
    return pathway_pb2.CancerPathwayShare(
        hospital_her_id=share.hospital_her_id,
        cancer_pathway=_enum(referrals_pb2.CancerPathway, "CANCER_PATHWAY", share.cancer_pathway),
        measured=share.measured,
        within_standard=share.within_standard,
        share=share.share,
        target_share=target,
        target_met=share.measured > 0 and share.share >= target,
        ended_without_treatment=share.ended_without_treatment,
    )


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


def _message_to_pb(m: Any) -> pathway_pb2.MessageStatus:
    return pathway_pb2.MessageStatus(
        event_id=m["event_id"],
        name=m["name"],
        to=common_pb2.Organisation(her_id=m["to_her_id"], kind=LEVEL_TO_PB[m["to_kind"]]),
        sent_at=api.timestamp(m["sent_at"]),
        receipt=_enum(common_pb2.AppRecStatus, "APP_REC_STATUS", m["status"]),
    )


def _correspondence_to_pb(c: Any, now: str) -> pathway_pb2.CorrespondenceSummary:
    def organisation(her_id: str, kind: str) -> common_pb2.Organisation:
        return common_pb2.Organisation(her_id=her_id, kind=LEVEL_TO_PB[kind])

    pb = pathway_pb2.CorrespondenceSummary(
        correspondence_id=c["correspondence_id"],
        name=CORRESPONDENCE_NAMES[c["message_type"]],
        to=organisation(c["to_her_id"], c["to_kind"]),
        sent_at=api.timestamp(c["sent_at"]),
    )
    getattr(pb, "from").CopyFrom(organisation(c["from_her_id"], c["from_kind"]))
    if c["answer_due"]:
        pb.answer_due.CopyFrom(api.timestamp(c["answer_due"]))
        pb.late = (c["answered_at"] or now) > c["answer_due"]
    if c["answered_at"]:
        pb.answered_at.CopyFrom(api.timestamp(c["answered_at"]))
    return pb


def _stay_to_pb(s: Any) -> pathway_pb2.StayPeriod:
    pb = pathway_pb2.StayPeriod(
        stay_id=s["stay_id"],
        hospital_her_id=s["hospital_her_id"],
        ward=s["ward"],
        admitted_at=api.timestamp(s["admitted_at"]),
    )
    if s["closed_at"]:
        pb.closed_at.CopyFrom(api.timestamp(s["closed_at"]))
    return pb


def _service_to_pb(s: Any) -> pathway_pb2.MunicipalServicePeriod:
    pb = pathway_pb2.MunicipalServicePeriod(
        service_id=s["service_id"],
        kind=_enum(municipal_pb2.MunicipalServiceKind, "MUNICIPAL_SERVICE_KIND", s["kind"]),
        state=_enum(municipal_pb2.MunicipalServiceState, "MUNICIPAL_SERVICE_STATE", s["state"]),
        municipality_her_id=s["municipality_her_id"],
        institution_her_id=s["institution_her_id"] or "",
        decided_at=api.timestamp(s["decided_at"]),
        starts_on=api.date_to_pb(date.fromisoformat(s["starts_on"])),
        end_reason=_enum(municipal_pb2.ServiceEndReason, "SERVICE_END_REASON", s["end_reason"]),
    )
    for field in ("started_at", "ended_at"):
        if s[field]:
            getattr(pb, field).CopyFrom(api.timestamp(s[field]))
    return pb


def _service_kind(kind: municipal_pb2.MunicipalServiceKind.ValueType) -> str | None:
    """A service-kind filter as the read model names it (None: no filter)."""
    if not kind:
        return None
    if kind not in municipal_pb2.MunicipalServiceKind.values():
        raise InvalidArgument("service_kind", "is not a known kind of municipal service")
    name: str = municipal_pb2.MunicipalServiceKind.Name(kind)
    return name.removeprefix("MUNICIPAL_SERVICE_KIND_")


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
        service_kind=_service_kind(request.service_kind),
    )


def _payment_to_pb(row: Any, today: date, rates: Mapping[int, int]) -> pathway_pb2.PaymentPeriod:
    """A stored readiness period as it stands on `today` (a running one counts today's døgn),
    priced with the rates of the payment_rates table as they are now (a rate an operator adds
    prices its year's stored days at once). The payer is the municipality the registers say
    the patient stayed or lived in on the ready day (since 2019 the oppholdskommune pays) —
    empty when they do not know, never the municipality the event named."""
    not_payable = [NotPayable(code) for code in row["not_payable"].split(",") if code]
    missing = [item for item in row["missing_content"].split(",") if item]
    span = PaymentSpan(
        stay_id=row["stay_id"],
        municipality_her_id=row["municipality_her_id"],
        ready_on=date.fromisoformat(row["ready_on"]),
        ends_on=date.fromisoformat(row["ends_on"]) if row["ends_on"] else None,
        not_payable=tuple(not_payable),
        missing_content=tuple(missing),
    )
    period = span.on(today)
    pb = pathway_pb2.PaymentPeriod(
        stay_id=period.stay_id,
        municipality_her_id=row["payer_her_id"] or "",
        ready_on=api.date_to_pb(period.ready_on),
        until=api.date_to_pb(period.until),
        days=(period.until - period.ready_on).days,
        ongoing=period.ongoing,
        payable=span.payable,
        not_payable_reasons=[
            pathway_pb2.NotPayableReason.Value(f"NOT_PAYABLE_REASON_{r.value}") for r in not_payable
        ],
        not_payable_text=not_payable_text(not_payable, missing),
    )
    by_year = rules.days_by_year(period.ready_on, period.until)
    for year, days in sorted(by_year.items()):
        rate = rates.get(year)
        pb.years.add(
            year=year,
            days=days,
            daily_rate_nok=rate or 0,
            amount_nok=(rate or 0) * days,
            rate_known=rate is not None,
        )
    try:
        pb.amount_nok = rules.payment_days(period.ready_on, period.until, rates).amount_nok
    except rules.MissingRule as exc:
        pb.amount_unavailable_reason = str(exc)
    pb.amount_owed_nok = pb.amount_nok if span.payable else 0
    return pb


def _month(
    request: pathway_pb2.StatisticsRequest, field: Literal["from_month", "to_month"]
) -> Month:
    if not request.HasField(field):
        raise InvalidArgument(field, "is required (a year and a month)")
    pb = getattr(request, field)
    if not 2000 <= pb.year <= 2100:
        raise InvalidArgument(field, "year must be between 2000 and 2100")
    if not 1 <= pb.month <= 12:
        raise InvalidArgument(field, "month must be between 1 and 12")
    return Month(pb.year, pb.month)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _waiting_days_to_pb(
    cell: views.WaitingDays, month: Month, threshold: int, rates: Mapping[int, int]
) -> pathway_pb2.WaitingDaysStatistics:
    """A month's overliggerdøgn and their amount at the year's daily rate from the rates table
    (or why not)."""
    shown, hidden = statistics.suppressed(cell, views.WaitingDays(), threshold)
    pb = pathway_pb2.WaitingDaysStatistics(
        suppressed=hidden, patients=shown.patients, days=shown.days
    )
    if not hidden:
        try:
            pb.amount_nok = rules.daily_rate(month.year, rates) * shown.days
        except rules.MissingRule as exc:
            pb.amount_unavailable_reason = str(exc)
    return pb


def _messages_to_pb(cell: views.MessagesAnswered, threshold: int) -> pathway_pb2.MessageStatistics:
    shown, hidden = statistics.suppressed(cell, views.MessagesAnswered(), threshold)
    return pathway_pb2.MessageStatistics(
        suppressed=hidden,
        patients=shown.patients,
        messages=shown.messages,
        answered_in_time=shown.in_time,
        answered_late=shown.late,
        unanswered_overdue=shown.overdue,
        pending=shown.pending,
        share_in_time=_share(shown.in_time, shown.in_time + shown.late + shown.overdue),
    )


def _cancer_to_pb(
    cell: views.CancerPathwaysTreated, threshold: int
) -> pathway_pb2.CancerPathwayStatistics:
    shown, hidden = statistics.suppressed(cell, views.CancerPathwaysTreated(), threshold)
    return pathway_pb2.CancerPathwayStatistics(
        suppressed=hidden,
        patients=shown.patients,
        pathways=shown.pathways,
        within_standard=shown.within_standard,
        share_within_standard=_share(shown.within_standard, shown.pathways),
    )


#: How long a WatchPathway stream waits for a change before it checks that its caller is
#: still there (the change feed itself is read by one poller, services/pathway/feed.py).
WATCH_WAIT_SECONDS = 1.0
MAX_PAGE_SIZE = 200
#: Timeline entries GetPathway answers at most per page (page_size).
MAX_TIMELINE_PAGE = 500
#: Each WatchPathway stream holds a server thread while it is open (no database connection:
#: it waits on the shared change feed).
MAX_WORKERS = 128


def _relations_to_pb(relations: list[Relationship]) -> pathway_pb2.CareRelations:
    pb = pathway_pb2.CareRelations()
    for r in relations:  # oldest first: the newest of each kind wins
        if r.basis is Basis.RESIDENCE_MUNICIPALITY:
            pb.residence_municipality_her_id = r.her_id
        elif r.basis is Basis.TEMPORARY_RESIDENCE_MUNICIPALITY:
            pb.temporary_residence_municipality_her_id = r.her_id
        elif r.basis is Basis.FASTLEGE:
            pb.fastlege_her_id, pb.fastlege_hpr_number = r.her_id, r.hpr or ""
    return pb


def _directory(facts: FactStore, her_ids: set[str]) -> list[registry_pb2.OrganisationEntry]:
    return [
        registry_pb2.OrganisationEntry(
            her_id=o.her_id,
            kind=LEVEL_TO_PB.get(o.kind, common_pb2.ORGANISATION_KIND_UNSPECIFIED),
            name=o.name,
            parent_her_id=o.parent_her_id or "",
        )
        for o in facts.organisations(her_ids)
    ]


def _pathway_request(request: pathway_pb2.ExportFhirRequest) -> pathway_pb2.GetPathwayRequest:
    """The GetPathway request an export answers (the patient and purpose the policy admitted)."""
    return pathway_pb2.GetPathwayRequest(patient=request.patient, purpose=request.purpose)


def _named_in(pathway: pathway_pb2.Pathway) -> set[str]:
    """Every HER-id the answer names (for the directory's names)."""
    named = {pathway.municipality_her_id, pathway.location.her_id}
    named |= {e.actor.organisation.her_id for e in pathway.timeline}
    named |= {r.sender_her_id for r in pathway.summary.referrals}
    named |= {r.receiver_her_id for r in pathway.summary.referrals}
    named |= {t.waiting_on.her_id for t in pathway.tasks}
    named |= {m.to.her_id for m in pathway.messages}
    named |= {getattr(c, "from").her_id for c in pathway.correspondence}
    named |= {s.hospital_her_id for s in pathway.stays}
    named |= {p.municipality_her_id for p in pathway.payments}
    named |= {s.municipality_her_id for s in pathway.municipal_services}
    named |= {s.institution_her_id for s in pathway.municipal_services}
    r = pathway.relations
    named |= {
        r.residence_municipality_her_id,
        r.temporary_residence_municipality_her_id,
        r.fastlege_her_id,
    }
    for entry in pathway.medications.entries:
        named |= {
            entry.source.her_id,
            entry.prescribed_by.organisation.her_id,
            entry.last_changed_by.organisation.her_id,
        }
    named.add(pathway.medications.last_reconciliation.reconciled_by.organisation.her_id)
    return named - {""}


class PathwayServicer(pathway_pb2_grpc.PathwayServiceServicer):
    """Every call has passed the access policy before it gets here (the shared interceptor):
    the patient, the caller and the basis are the admitted call's (`current_call()`)."""

    def __init__(self, engine: Engine, access: AccessControl) -> None:
        self._engine = engine
        self._access = access
        self._feed = ChangeFeed(engine)

    def GetPathway(
        self, request: pathway_pb2.GetPathwayRequest, context: grpc.ServicerContext
    ) -> pathway_pb2.Pathway:
        call = current_call()
        patient, key = call.patient or {}, call.patient_key or ""
        as_of = request.as_of.ToDatetime(tzinfo=UTC) if request.HasField("as_of") else None
        medications_at = (
            request.medications_at.ToDatetime(tzinfo=UTC)
            if request.HasField("medications_at")
            else None
        )
        if not 0 <= request.page_size <= MAX_TIMELINE_PAGE:
            raise InvalidArgument("page_size", f"must be between 0 and {MAX_TIMELINE_PAGE}")
        page = None
        if request.page_size:
            page = views.TimelinePage(pages.position(request) or 0, request.page_size)
        elif request.page_token:
            raise InvalidArgument("page_token", "needs a page_size (a page of the timeline)")
        view = views.get_pathway(self._engine, key, as_of, medications_at, page)
        if view is None:
            raise NotFound("no pathway for this patient")
        moment = as_of or datetime.now(UTC)
        reply = pathway_pb2.Pathway(patient=api.patient_to_pb(patient), as_of=api.timestamp(moment))
        if page is not None and view.timeline_goes_on:
            after = int(view.timeline[-1]["position"]) + 1
            reply.next_timeline_page_token = pages.next_token(request, after)
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
                        _milestone_to_pb(m, utc_iso(moment)) for m in r["cancer_milestones"] or []
                    ],
                    cancer_total=(
                        _cancer_total_to_pb(r["cancer_total"], moment)
                        if r["cancer_total"]
                        else None
                    ),
                )
            )
        reply.location.CopyFrom(_location_to_pb(view.patient))
        reply.municipality_her_id = view.patient["municipality_her_id"] or ""
        today = moment.astimezone(OSLO).date()
        reply.payments.extend(_payment_to_pb(p, today, view.rates) for p in view.payments)
        reply.messages.extend(_message_to_pb(m) for m in view.messages)
        reply.correspondence.extend(
            _correspondence_to_pb(c, utc_iso(moment)) for c in view.correspondence
        )
        reply.stays.extend(_stay_to_pb(s) for s in view.stays)
        reply.municipal_services.extend(_service_to_pb(s) for s in view.services)
        if view.patient["died_at"]:
            reply.died_at.CopyFrom(api.timestamp(view.patient["died_at"]))
        if view.medications is not None:
            reply.medications.CopyFrom(medication_list_to_pb(view.medications))
        reply.tasks.extend(_task_to_pb(t, utc_iso(moment)) for t in view.tasks)
        reply.relations.CopyFrom(_relations_to_pb(self._access.facts.relations(key, moment)))
        reply.access_basis = api.basis_to_pb(call.decision.basis)
        named = _named_in(reply) | {call.actor.her_id}  # the reader's own name too
        reply.organisations.extend(_directory(self._access.facts, named - {""}))
        return reply

    def ExportFhir(
        self, request: pathway_pb2.ExportFhirRequest, context: grpc.ServicerContext
    ) -> pathway_pb2.ExportFhirResponse:
        """GetPathway's own answer for this caller, mapped to a FHIR Bundle: GetPathway's
        access rule (its own row in shared/access/table.py), audited as GetPathway is (one row,
        named ExportFhir), the same NOT_FOUND. The Bundle is personal health data: never logged."""
        pathway = self.GetPathway(_pathway_request(request), context)
        return pathway_pb2.ExportFhirResponse(
            bundle_json=fhir.bundle_json(pathway), fhir_version=fhir.FHIR_VERSION
        )

    def ListPathways(
        self, request: pathway_pb2.ListPathwaysRequest, context: grpc.ServicerContext
    ) -> pathway_pb2.ListPathwaysResponse:
        call = current_call()
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
        size = request.page_size or 50
        offset = pages.position(request) or 0
        where = _worklist_filter(request)
        moment = datetime.now(UTC)
        rows = views.list_pathways(
            self._engine, call.actor, MUNICIPALITY_MEMBERSHIP, moment, where, size + 1, offset
        )
        page, more = rows[:size], len(rows) > size
        keys = [item.patient["patient_key"] for item in page]
        call.disclosed.update(
            self._access.facts.members(call.actor, keys, MUNICIPALITY_MEMBERSHIP, moment)
        )
        now = utc_iso(moment)
        reply = pathway_pb2.ListPathwaysResponse(
            next_page_token=pages.next_token(request, offset + size) if more else ""
        )
        for listed in page:
            r = listed.patient
            open_tasks = [_task_to_pb(t, now) for t in listed.tasks]
            item = pathway_pb2.PathwayListItem(
                patient=_patient_of(r["patient_key"]),
                open_tasks=int(r["open_tasks"]),
                overdue_tasks=sum(1 for t in open_tasks if t.breached),
                open_referrals=int(r["open_referrals"]),
                last_event_at=api.timestamp(r["last_occurred_at"]),
                location=_location_to_pb(r),
                tasks=open_tasks,
                services=[
                    municipal_pb2.MunicipalServiceKind.Value(f"MUNICIPAL_SERVICE_KIND_{kind}")
                    for kind in listed.services
                ],
            )
            if r["died_at"]:
                item.died_at.CopyFrom(api.timestamp(r["died_at"]))
            if r["next_due"]:
                item.next_due.CopyFrom(api.timestamp(r["next_due"]))
            if r["ready_for_discharge_since"]:
                item.ready_for_discharge_since.CopyFrom(
                    api.timestamp(r["ready_for_discharge_since"])
                )
            reply.items.append(item)
        named = {call.actor.her_id, *(i.location.her_id for i in reply.items)}
        named |= {t.waiting_on.her_id for i in reply.items for t in i.tasks}
        reply.organisations.extend(_directory(self._access.facts, named - {""}))
        return reply

    def Statistics(
        self, request: pathway_pb2.StatisticsRequest, context: grpc.ServicerContext
    ) -> pathway_pb2.StatisticsResponse:
        """The municipality's numbers per month: the policy admitted the municipality itself
        or an operator (the HER-id is checked there); one query per measure; every figure
        resting on a few patients suppressed before it leaves."""
        municipality = api.her_id(request.municipality_her_id, "municipality_her_id")
        moment = datetime.now(UTC)
        today = moment.astimezone(OSLO).date()
        first, last = _month(request, "from_month"), _month(request, "to_month")
        months = statistics.month_range(first, last, today)
        days = views.waiting_days(self._engine, municipality, months, today)
        messages = views.messages_answered(self._engine, municipality, months, moment)
        cancer = views.cancer_pathways_treated(self._engine, municipality, months)
        threshold = statistics.small_count_threshold()
        rates = views.daily_rates(self._engine)
        reply = pathway_pb2.StatisticsResponse(
            municipality_her_id=municipality,
            suppression_threshold=threshold,
            as_of=api.timestamp(moment),
        )
        for month in months:
            reply.months.append(
                pathway_pb2.MonthStatistics(
                    month=pathway_pb2.YearMonth(year=month.year, month=month.month),
                    waiting_days=_waiting_days_to_pb(
                        days.get(month, views.WaitingDays()), month, threshold, rates
                    ),
                    messages=_messages_to_pb(
                        messages.get(month, views.MessagesAnswered()), threshold
                    ),
                    cancer_pathways=_cancer_to_pb(
                        cancer.get(month, views.CancerPathwaysTreated()), threshold
                    ),
                )
            )
        for entry in _directory(self._access.facts, {municipality}):
            reply.municipality.CopyFrom(entry)
        return reply

    def ListCancerPathwayShares(
        self, request: pathway_pb2.ListCancerPathwaySharesRequest, context: grpc.ServicerContext
    ) -> pathway_pb2.ListCancerPathwaySharesResponse:
        """The caller's own hospital's figures (the policy admitted it as that hospital)."""
        for field in ("from_day", "to_day"):
            if not request.HasField(field):
                raise InvalidArgument(field, "is required")
        first = api.date_from_pb(request.from_day, "from_day")
        last = api.date_from_pb(request.to_day, "to_day")
        if last < first:
            raise InvalidArgument("to_day", "must not be before from_day")
        start = datetime.combine(first, time.min, OSLO)
        end = datetime.combine(last + timedelta(days=1), time.min, OSLO)
        shares = views.cancer_pathway_shares(
            self._engine, start, end, hospital_her_ids=[request.hospital_her_id]
        )
        return pathway_pb2.ListCancerPathwaySharesResponse(shares=[_share_to_pb(s) for s in shares])

    def WatchPathway(
        self, request: pathway_pb2.WatchPathwayRequest, context: grpc.ServicerContext
    ) -> Iterator[pathway_pb2.PathwayChange]:
        """One patient's changes while the caller may still see the patient; or the changes of
        the patients on the caller's worklist, each audited before it is sent."""
        call = current_call()
        subscription = self._feed.subscribe(call.patient_key)
        try:
            while context.is_active():
                changes = subscription.take(timeout=WATCH_WAIT_SECONDS)
                if not changes:
                    continue
                if call.patient_key is not None:
                    if not self._access.still_allowed(call):
                        raise NotPermitted("access to the patient has ended")
                else:
                    keys = {c["patient_key"] for c in changes}
                    members = self._access.facts.members(
                        call.actor, keys, MUNICIPALITY_MEMBERSHIP, datetime.now(UTC)
                    )
                    self._access.record_disclosed(call, members)
                    changes = [c for c in changes if c["patient_key"] in members]
                for change in changes:
                    yield pathway_pb2.PathwayChange(
                        patient=_patient_of(change["patient_key"]),
                        changed_at=api.timestamp(change["changed_at"]),
                        sequence=int(change["sequence"]),
                    )
        finally:
            self._feed.unsubscribe(subscription)


SERVICE_NAMES = (pathway_pb2.DESCRIPTOR.services_by_name["PathwayService"].full_name,)


def resolvers(engine: Engine) -> dict[str, Resolver]:
    """Pathway calls name their patient in the request: nothing to resolve."""
    return {}


def register(engine: Engine, access: AccessControl) -> Any:
    def _register(server: grpc.Server) -> None:
        pathway_pb2_grpc.add_PathwayServiceServicer_to_server(
            PathwayServicer(engine, access), server
        )

    return _register
