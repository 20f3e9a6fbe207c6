"""A municipal health and care service of one patient: the municipality's decision (vedtak),
its start and its end — home nursing (hjemmesykepleie), practical assistance (praktisk
bistand), a short-term or long-term place in an institution (korttids-/langtidsopphold),
rehabilitation in an institution, day activity (dagtilbud).

Who may decide is the access policy's business: only the municipality the patient lives or
stays in (registers). The service itself keeps to its own rules: only a municipality decides,
only the deciding municipality starts and ends it, and the states follow DECIDED → STARTED →
ENDED (a decided service may end before it starts: the decision is withdrawn).

Each public method checks the rule, then triggers a past-tense event; the `@event` methods only
apply state, so replaying history never re-checks rules.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from shared.actors import OrgKind
from shared.domain import CarepathAggregate, CommandContext
from shared.errors import InvalidArgument, InvalidTransition, NotPermitted

__all__ = [
    "EndReason",
    "MunicipalService",
    "ServiceKind",
    "ServiceState",
    "service_id_for",
]


class ServiceKind(enum.StrEnum):
    HOME_NURSING = "HOME_NURSING"  # hjemmesykepleie
    PRACTICAL_ASSISTANCE = "PRACTICAL_ASSISTANCE"  # praktisk bistand
    SHORT_TERM_STAY = "SHORT_TERM_STAY"  # korttidsopphold
    LONG_TERM_STAY = "LONG_TERM_STAY"  # langtidsopphold
    REHABILITATION = "REHABILITATION"  # rehabiliteringsopphold i institusjon
    DAY_ACTIVITY = "DAY_ACTIVITY"  # dagtilbud

    @property
    def in_institution(self) -> bool:
        """A place in an institution: the patient lives there while it runs."""
        return self in INSTITUTION_KINDS


INSTITUTION_KINDS = frozenset(
    {ServiceKind.SHORT_TERM_STAY, ServiceKind.LONG_TERM_STAY, ServiceKind.REHABILITATION}
)


class ServiceState(enum.StrEnum):
    DECIDED = "DECIDED"
    STARTED = "STARTED"
    ENDED = "ENDED"


class EndReason(enum.StrEnum):
    NO_LONGER_NEEDED = "NO_LONGER_NEEDED"
    REPLACED = "REPLACED"
    PATIENT_DECLINED = "PATIENT_DECLINED"
    MOVED = "MOVED"
    PATIENT_DIED = "PATIENT_DIED"


def service_id_for(municipality_her_id: str, command_id: str) -> UUID:
    """The same decide command from the same municipality always names the same service."""
    return uuid5(NAMESPACE_URL, f"carepath:municipal-service:{municipality_her_id}:{command_id}")


class MunicipalService(CarepathAggregate):
    """One decided service of one patient, from the decision (vedtak) to its end."""

    @classmethod
    def decide(
        cls,
        ctx: CommandContext,
        patient: dict[str, str],
        kind: ServiceKind,
        starts_on: date,
        institution_her_id: str | None,
    ) -> MunicipalService:
        if ctx.actor.org_kind is not OrgKind.MUNICIPALITY:
            raise NotPermitted("only a municipality decides a municipal service")
        if kind.in_institution and not institution_her_id:
            raise InvalidArgument(
                "institution_her_id", f"is required for a place in an institution ({kind})"
            )
        if not kind.in_institution and institution_her_id:
            raise InvalidArgument(
                "institution_her_id", f"must be empty for a service at home ({kind})"
            )
        return cls(
            meta=ctx.meta(patient),
            kind=kind.value,
            municipality_her_id=ctx.actor.her_id,
            starts_on=starts_on.isoformat(),
            institution_her_id=institution_her_id,
        )

    @staticmethod
    def create_id(meta: dict[str, Any], municipality_her_id: str, **_: Any) -> UUID:
        return service_id_for(municipality_her_id, meta["command_id"])

    @event("MunicipalServiceDecided")
    def __init__(
        self,
        meta: dict[str, Any],
        kind: str,
        municipality_her_id: str,
        starts_on: str,
        institution_her_id: str | None,
    ) -> None:
        self.patient: dict[str, str] = meta["patient"]
        self.kind = ServiceKind(kind)
        self.municipality_her_id = municipality_her_id
        self.starts_on = date.fromisoformat(starts_on)
        self.institution_her_id = institution_her_id
        self.state = ServiceState.DECIDED
        self.decided_at = datetime.fromisoformat(meta["occurred_at"])
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.end_reason: EndReason | None = None
        self._handled(meta)

    def _deciding_municipality(self, ctx: CommandContext, action: str) -> None:
        if ctx.actor.her_id != self.municipality_her_id:
            raise NotPermitted(f"only the deciding municipality may {action} the service")

    def start(self, ctx: CommandContext) -> None:
        """The service starts (the first visit, the arrival at the institution)."""
        self._deciding_municipality(ctx, "start")
        if self.state is not ServiceState.DECIDED:
            raise InvalidTransition("the service", self.state.value, "start the service")
        if ctx.occurred_at < self.decided_at:
            raise InvalidArgument(
                "metadata.occurred_at", "must not be before the decision (vedtak)"
            )
        self._started(meta=ctx.meta(self.patient))

    @event("MunicipalServiceStarted")
    def _started(self, meta: dict[str, Any]) -> None:
        self.state = ServiceState.STARTED
        self.started_at = datetime.fromisoformat(meta["occurred_at"])
        self._handled(meta)

    def end(self, ctx: CommandContext, reason: EndReason) -> None:
        """The service ends; a decided one that never started is withdrawn."""
        self._deciding_municipality(ctx, "end")
        if self.state is ServiceState.ENDED:
            raise InvalidTransition("the service", self.state.value, "end the service")
        since = self.started_at or self.decided_at
        if ctx.occurred_at < since:
            raise InvalidArgument(
                "metadata.occurred_at", "must not be before the service's start or decision"
            )
        self._ended(
            meta=ctx.meta(self.patient),
            reason=reason.value,
            started=self.state is ServiceState.STARTED,
        )

    @event("MunicipalServiceEnded")
    def _ended(self, meta: dict[str, Any], reason: str, started: bool) -> None:
        self.state = ServiceState.ENDED
        self.ended_at = datetime.fromisoformat(meta["occurred_at"])
        self.end_reason = EndReason(reason)
        self._handled(meta)
