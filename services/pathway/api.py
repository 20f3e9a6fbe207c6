"""PathwayService over gRPC: the patient's timeline and summary from the read model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from carepath.v1 import common_pb2, pathway_pb2, pathway_pb2_grpc, referrals_pb2
from sqlalchemy.engine import Engine

from services.pathway import readmodel as rm
from services.pathway import views
from shared import api
from shared.errors import InvalidArgument, NotFound
from shared.grpc_server import current_actor

LEVEL_TO_PB = {
    "MUNICIPALITY": common_pb2.ORGANISATION_KIND_MUNICIPALITY,
    "GP": common_pb2.ORGANISATION_KIND_GP,
    "HOSPITAL": common_pb2.ORGANISATION_KIND_HOSPITAL,
}


def _enum(enum_type: Any, prefix: str, value: str | None) -> Any:
    """The proto enum number of a read-model string, 0 (UNSPECIFIED) for none."""
    return enum_type.Value(f"{prefix}_{value}") if value else 0


class PathwayServicer(pathway_pb2_grpc.PathwayServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def GetPathway(
        self, request: pathway_pb2.GetPathwayRequest, context: grpc.ServicerContext
    ) -> pathway_pb2.Pathway:
        patient = api.patient(request)
        purpose = request.purpose.strip()
        if not purpose:
            raise InvalidArgument("purpose", "is required (why the pathway is read; audited)")
        if len(purpose) > 200:
            raise InvalidArgument("purpose", "must be at most 200 characters")
        key = rm.patient_key(patient)
        as_of = request.as_of.ToDatetime(tzinfo=UTC) if request.HasField("as_of") else None
        views.record_read(self._engine, key, current_actor(), purpose, "GetPathway")
        view = views.get_pathway(self._engine, key, as_of)
        if view is None:
            raise NotFound("no pathway for this patient")
        moment = as_of or datetime.now(UTC)
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
                )
            )
        for t in view.tasks:
            reply.tasks.append(
                pathway_pb2.OpenTask(
                    task_id=t["task_id"],
                    kind=_enum(pathway_pb2.TaskKind, "TASK_KIND", t["kind"]),
                    description=t["description"],
                    waiting_on=common_pb2.Organisation(
                        her_id=t["waiting_on_her_id"],
                        kind=LEVEL_TO_PB.get(
                            t["waiting_on_kind"], common_pb2.ORGANISATION_KIND_UNSPECIFIED
                        ),
                    ),
                    since=api.timestamp(t["since"]),
                    due=api.timestamp(t["due"]),
                    breached=t["due"] < rm.utc_iso(moment),
                    aggregate_id=t["aggregate_id"],
                )
            )
        return reply


SERVICE_NAMES = (pathway_pb2.DESCRIPTOR.services_by_name["PathwayService"].full_name,)


def register(engine: Engine) -> Any:
    def _register(server: grpc.Server) -> None:
        pathway_pb2_grpc.add_PathwayServiceServicer_to_server(PathwayServicer(engine), server)

    return _register
