"""The end of a hospital stay: the patient declared ready for discharge (*utskrivningsklar*) with
*Melding om utskrivningsklar pasient* to the home municipality, the municipality's answer,
withdrawal of readiness (*avmelding*), the discharge with the *Utskrivningsrapport* to the
municipal nursing service, the *epikrise* to the GP and the municipality, and each message's
application receipt (AppRec) recorded by its receiver.

The stay itself belongs to the admissions service; the rules here see it as a `KnownStay`
(the discharges service's own view of the admissions events, see `reactions.py`).

Each public method checks the rule and who may act, then triggers a past-tense event; the
`@event` methods only apply state, so replaying history never re-checks rules.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from shared.actors import OrgKind
from shared.apprec import MessageReceipts
from shared.domain import CarepathAggregate, CommandContext
from shared.errors import InvalidArgument, InvalidTransition, NotPermitted, NotYetKnown
from shared.times import OSLO

__all__ = [
    "Destination",
    "Discharge",
    "DischargeState",
    "KnownStay",
    "MessageType",
    "ReadinessContent",
    "discharge_id_for",
]


#: What a readiness notice says, item by item (the public event's version 2 fields; rules.toml
#: [discharge_payment.conditions.readiness_notice] names the items the duty to pay needs).
READINESS_CONTENT = ("status", "functional_level", "expected_course", "follow_up_needs")


@dataclass(frozen=True)
class ReadinessContent:
    """The content of a readiness notice: clinical free text per item, None where the notice
    does not say."""

    status: str | None = None
    functional_level: str | None = None
    expected_course: str | None = None
    follow_up_needs: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return dataclasses.asdict(self)


class DischargeState(enum.StrEnum):
    NOT_READY = "NOT_READY"
    READY = "READY"
    DISCHARGED = "DISCHARGED"


class Destination(enum.StrEnum):
    HOME = "HOME"
    HOME_WITH_SERVICES = "HOME_WITH_SERVICES"
    SHORT_TERM_NURSING_HOME = "SHORT_TERM_NURSING_HOME"
    LONG_TERM_NURSING_HOME = "LONG_TERM_NURSING_HOME"
    OTHER_HOSPITAL = "OTHER_HOSPITAL"


#: Destinations named by the receiving institution's HER-id.
NEEDS_HER_ID = frozenset(
    {
        Destination.SHORT_TERM_NURSING_HOME,
        Destination.LONG_TERM_NURSING_HOME,
        Destination.OTHER_HOSPITAL,
    }
)
#: Destinations whose municipal nursing service gets the Utskrivningsrapport.
NEEDS_REPORT = frozenset(
    {
        Destination.HOME_WITH_SERVICES,
        Destination.SHORT_TERM_NURSING_HOME,
        Destination.LONG_TERM_NURSING_HOME,
    }
)


class MessageType(enum.StrEnum):
    """The PLO messages of a discharge, named as in the message standard."""

    READINESS_NOTICE = "READINESS_NOTICE"  # Melding om utskrivningsklar pasient
    DISCHARGE_REPORT = "DISCHARGE_REPORT"  # Utskrivningsrapport
    EPICRISIS = "EPICRISIS"  # Epikrise
    WITHDRAWAL_NOTICE = "WITHDRAWAL_NOTICE"  # Avmelding av utskrivningsklar pasient
    DISCHARGE_NOTICE = "DISCHARGE_NOTICE"  # Melding om utskrevet pasient


@dataclass(frozen=True, slots=True)
class KnownStay:
    """A stay as the discharges service knows it from the admissions events."""

    stay_id: UUID
    patient: dict[str, str]
    hospital_her_id: str  # the responsible hospital now
    municipality_her_id: str
    state: str  # OPEN | CLOSED


def discharge_id_for(stay_id: UUID) -> UUID:
    """One discharge per stay."""
    return uuid5(NAMESPACE_URL, f"carepath:discharge:{stay_id}")


def message_id_for(discharge_id: UUID, her_id: str, command_id: str) -> UUID:
    """The same command from the same organisation always names the same message."""
    return uuid5(NAMESPACE_URL, f"carepath:discharge-message:{discharge_id}:{her_id}:{command_id}")


def opening_context(ctx: CommandContext) -> CommandContext:
    """The context of the bookkeeping event that opens a discharge: its own command id, so the
    command's first result is the discharge after the command's clinical event."""
    return dataclasses.replace(ctx, command_id=f"open:{ctx.command_id}")


def require_open_stay(stay: KnownStay | None, stay_id: UUID, action: str) -> KnownStay:
    """Readiness and discharge only for a stay admitted and still open."""
    if stay is None:
        # Discharges learns of stays from admissions' events: a stay admitted moments ago may
        # not have arrived yet, so this is transient (UNAVAILABLE, retried), not impossible.
        raise NotYetKnown(f"cannot {action}: the stay {stay_id} is not known to discharges yet")
    if stay.state != "OPEN":
        raise InvalidTransition(f"the stay {stay_id}", stay.state, action)
    return stay


def require_hospital(ctx: CommandContext, stay: KnownStay, action: str) -> None:
    if ctx.actor.org_kind is not OrgKind.HOSPITAL or ctx.actor.her_id != stay.hospital_her_id:
        raise NotPermitted(f"only the hospital responsible for the stay may {action}")


class Discharge(MessageReceipts, CarepathAggregate):
    """The discharge of one stay: readiness periods, the discharge and its messages."""

    @classmethod
    def open(cls, ctx: CommandContext, stay: KnownStay) -> Discharge:
        """Bookkeeping before the first clinical event of the stay's discharge (readiness or,
        without readiness, the discharge itself), saved in the same transaction."""
        return cls(
            meta=opening_context(ctx).meta(stay.patient),
            stay_id=str(stay.stay_id),
            municipality_her_id=stay.municipality_her_id,
        )

    @staticmethod
    def create_id(meta: dict[str, Any], stay_id: str, **_: Any) -> UUID:
        return discharge_id_for(UUID(stay_id))

    @event("DischargeOpened")
    def __init__(self, meta: dict[str, Any], stay_id: str, municipality_her_id: str) -> None:
        self.patient: dict[str, str] = meta["patient"]
        self.stay_id = stay_id
        self.hospital_her_id: str = meta["actor"]["her_id"]
        self.municipality_her_id = municipality_her_id
        self.state = DischargeState.NOT_READY
        self.readiness_periods: list[dict[str, Any]] = []
        self.destination: Destination | None = None
        self.destination_her_id: str | None = None
        self.discharged_at: str | None = None
        self.messages: dict[str, dict[str, Any]] = {}
        self._handled(meta)

    # --- rules -------------------------------------------------------------------------------

    @property
    def current_period(self) -> dict[str, Any] | None:
        """The readiness period in progress (None unless READY)."""
        if self.state is not DischargeState.READY:
            return None
        return self.readiness_periods[-1]

    def _message_id(self, ctx: CommandContext) -> str:
        return str(message_id_for(self.id, ctx.actor.her_id, ctx.command_id))

    # --- commands: readiness -------------------------------------------------------------------

    class PatientDeclaredReadyForDischarge(CarepathAggregate.Event):
        """Declared with its class version (eventsourcing's upcasting): at version 2 the
        readiness notice carries its content; stored before, without it and without a class
        version (1), it reads with none recorded."""

        meta: dict[str, Any]
        stay_id: str
        hospital_her_id: str
        municipality_her_id: str
        message_id: str
        content: dict[str, str | None]

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.setdefault("content", dict.fromkeys(READINESS_CONTENT))

    def declare_ready(
        self, ctx: CommandContext, stay: KnownStay | None, content: ReadinessContent
    ) -> None:
        """Melding om utskrivningsklar pasient to the home municipality, with what the notice
        says (an item left out is recorded as such: the notice is sent all the same, and the
        pathway marks the period not payable). Again after a withdrawal: a new readiness
        period."""
        action = "declare the patient ready for discharge"
        known = require_open_stay(stay, UUID(self.stay_id), action)
        require_hospital(ctx, known, action)
        if self.state is not DischargeState.NOT_READY:
            raise InvalidTransition("the patient", f"already {self.state.value}", action)
        self._declared_ready(
            meta=ctx.meta(self.patient),
            stay_id=self.stay_id,
            hospital_her_id=ctx.actor.her_id,
            municipality_her_id=known.municipality_her_id,
            message_id=self._message_id(ctx),
            content=content.as_dict(),
        )

    @event(PatientDeclaredReadyForDischarge)
    def _declared_ready(
        self,
        meta: dict[str, Any],
        stay_id: str,
        hospital_her_id: str,
        municipality_her_id: str,
        message_id: str,
        content: dict[str, str | None],
    ) -> None:
        self.state = DischargeState.READY
        self.hospital_her_id = hospital_her_id
        self.municipality_her_id = municipality_her_id
        self.readiness_periods.append(
            {
                "ready_at": meta["occurred_at"],
                "hospital_her_id": hospital_her_id,
                "municipality_her_id": municipality_her_id,
                "message_id": message_id,
                "answer": None,
                "withdrawn_at": None,
                "withdrawal_reason": None,
            }
        )
        self._add_message(meta, message_id, MessageType.READINESS_NOTICE, municipality_her_id)
        self._handled(meta)

    def answer_readiness(
        self, ctx: CommandContext, can_receive: bool, receive_on: date | None
    ) -> None:
        """The home municipality says whether, and from which day, it can receive the patient."""
        period = self.current_period
        municipality = period["municipality_her_id"] if period else self.municipality_her_id
        if ctx.actor.org_kind is not OrgKind.MUNICIPALITY or ctx.actor.her_id != municipality:
            raise NotPermitted("only the patient's home municipality may answer the readiness")
        if period is None:
            raise InvalidTransition("the patient", self.state.value, "answer the readiness")
        if can_receive and receive_on is None:
            raise InvalidArgument("receive_on", "is required when can_receive is true")
        if not can_receive and receive_on is not None:
            raise InvalidArgument("receive_on", "must be unset when can_receive is false")
        ready_day = datetime.fromisoformat(period["ready_at"]).astimezone(OSLO).date()
        if receive_on is not None and receive_on < ready_day:
            raise InvalidArgument(
                "receive_on", "must not be before the day the patient was declared ready"
            )
        self._answered(
            meta=ctx.meta(self.patient),
            can_receive=can_receive,
            receive_on=receive_on.isoformat() if receive_on else None,
        )

    @event("MunicipalityAnsweredReadiness")
    def _answered(self, meta: dict[str, Any], can_receive: bool, receive_on: str | None) -> None:
        self.readiness_periods[-1]["answer"] = {
            "can_receive": can_receive,
            "receive_on": receive_on,
            "answered_at": meta["occurred_at"],
        }
        self._handled(meta)

    def withdraw_readiness(self, ctx: CommandContext, stay: KnownStay | None, reason: str) -> None:
        """Avmelding: the patient needs more hospital care; the readiness period ends."""
        action = "withdraw the readiness"
        require_hospital(ctx, stay or self._as_known_stay(), action)
        period = self.current_period
        if period is None:
            raise InvalidTransition("the patient", self.state.value, action)
        if ctx.occurred_at < datetime.fromisoformat(period["ready_at"]):
            raise InvalidArgument("metadata.occurred_at", "must not be before the readiness")
        self._withdrawn(
            meta=ctx.meta(self.patient), reason=reason, message_id=self._message_id(ctx)
        )

    @event("ReadinessWithdrawn")
    def _withdrawn(self, meta: dict[str, Any], reason: str, message_id: str | None = None) -> None:
        """The Avmelding goes to the municipality the readiness was notified to, and waits for
        its receipt (events stored before it was a message have no message id)."""
        self.state = DischargeState.NOT_READY
        period = self.readiness_periods[-1]
        period["withdrawn_at"] = meta["occurred_at"]
        period["withdrawal_reason"] = reason
        if message_id is not None:
            self._add_message(
                meta, message_id, MessageType.WITHDRAWAL_NOTICE, period["municipality_her_id"]
            )
        self._handled(meta)

    def _as_known_stay(self) -> KnownStay:
        return KnownStay(
            UUID(self.stay_id), self.patient, self.hospital_her_id, self.municipality_her_id, "OPEN"
        )

    # --- commands: the discharge ---------------------------------------------------------------

    def discharge(
        self,
        ctx: CommandContext,
        stay: KnownStay | None,
        destination: Destination,
        destination_her_id: str | None,
    ) -> None:
        """Utskrevet. Once per stay; a discharge without readiness is allowed (patients who need
        no municipal follow-up are often never declared ready)."""
        action = "discharge the patient"
        known = require_open_stay(stay, UUID(self.stay_id), action)
        require_hospital(ctx, known, action)
        if self.state is DischargeState.DISCHARGED:
            raise InvalidTransition("the patient", "already DISCHARGED", action)
        if destination in NEEDS_HER_ID and not destination_her_id:
            raise InvalidArgument("destination_her_id", f"is required for {destination.value}")
        if destination not in NEEDS_HER_ID and destination_her_id:
            raise InvalidArgument("destination_her_id", f"must be empty for {destination.value}")
        if destination_her_id == ctx.actor.her_id:
            raise InvalidArgument("destination_her_id", "must differ from the discharging hospital")
        period = self.current_period
        if period and ctx.occurred_at < datetime.fromisoformat(period["ready_at"]):
            raise InvalidArgument("metadata.occurred_at", "must not be before the readiness")
        report_message_id = self._message_id(ctx) if destination in NEEDS_REPORT else None
        # Melding om utskrevet pasient: to the municipality that was told of the patient (a
        # readiness notice) or will care for them (a destination with municipal care).
        notified = bool(self.readiness_periods) or destination in NEEDS_REPORT
        notice_message_id = (
            str(message_id_for(self.id, ctx.actor.her_id, f"notice:{ctx.command_id}"))
            if notified and self.municipality_her_id
            else None
        )
        self._discharged(
            meta=ctx.meta(self.patient),
            stay_id=self.stay_id,
            destination=destination.value,
            destination_her_id=destination_her_id,
            report_message_id=report_message_id,
            notice_message_id=notice_message_id,
        )

    @event("PatientDischarged")
    def _discharged(
        self,
        meta: dict[str, Any],
        stay_id: str,
        destination: str,
        destination_her_id: str | None,
        report_message_id: str | None,
        notice_message_id: str | None = None,
    ) -> None:
        self.state = DischargeState.DISCHARGED
        self.hospital_her_id = meta["actor"]["her_id"]
        self.destination = Destination(destination)
        self.destination_her_id = destination_her_id
        self.discharged_at = meta["occurred_at"]
        if report_message_id is not None:
            # To the nursing home, else to the home municipality's nursing service.
            to = destination_her_id or self.municipality_her_id
            self._add_message(meta, report_message_id, MessageType.DISCHARGE_REPORT, to)
        if notice_message_id is not None:
            self._add_message(
                meta, notice_message_id, MessageType.DISCHARGE_NOTICE, self.municipality_her_id
            )
        self._handled(meta)

    def send_epicrisis(self, ctx: CommandContext, to_her_id: str) -> None:
        """Epikrise to one recipient: the patient's GP or the home municipality."""
        action = "send the epicrisis"
        if ctx.actor.org_kind is not OrgKind.HOSPITAL or ctx.actor.her_id != self.hospital_her_id:
            raise NotPermitted("only the hospital that discharged the patient may send it")
        if self.state is not DischargeState.DISCHARGED:
            raise InvalidTransition("the patient", self.state.value, action)
        if to_her_id == ctx.actor.her_id:
            raise InvalidArgument("to_her_id", "must differ from the sending hospital")
        self._epicrisis_sent(
            meta=ctx.meta(self.patient), message_id=self._message_id(ctx), to_her_id=to_her_id
        )

    @event("EpicrisisSent")
    def _epicrisis_sent(self, meta: dict[str, Any], message_id: str, to_her_id: str) -> None:
        self._add_message(meta, message_id, MessageType.EPICRISIS, to_her_id)
        self._handled(meta)
