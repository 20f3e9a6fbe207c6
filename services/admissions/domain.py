"""The hospital stay (innleggelse) and the PLO messages exchanged about it: the hospital's
*Melding om innlagt pasient* and *Helseopplysninger* to the patient's home municipality, the
municipality's *Innleggelsesrapport* to the hospital, and each message's application receipt
(AppRec) recorded by its receiver. The stay can be transferred to another ward or hospital
(the new hospital becomes responsible) and is closed on discharge.

Each public method checks the rule and who may act, then triggers a past-tense event; the
`@event` methods only apply state, so replaying history never re-checks rules.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from shared import rules
from shared.actors import OrgKind
from shared.apprec import MessageReceipts
from shared.domain import CarepathAggregate, CommandContext
from shared.errors import InvalidArgument, InvalidTransition, NotPermitted

__all__ = [
    "AdmissionType",
    "CloseReason",
    "MessageType",
    "PatientStays",
    "Stay",
    "StayState",
]


class StayState(enum.StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"


class AdmissionType(enum.StrEnum):
    ACUTE = "ACUTE"
    ELECTIVE = "ELECTIVE"


class CloseReason(enum.StrEnum):
    DISCHARGED = "DISCHARGED"


class MessageType(enum.StrEnum):
    """The PLO messages of a stay, named as in the message standard."""

    ADMISSION_NOTICE = "ADMISSION_NOTICE"  # Melding om innlagt pasient
    ADMISSION_REPORT = "ADMISSION_REPORT"  # Innleggelsesrapport
    HEALTH_INFORMATION = "HEALTH_INFORMATION"  # Helseopplysninger


def stay_id_for(hospital_her_id: str, command_id: str) -> UUID:
    """The same admit command from the same hospital always names the same stay."""
    return uuid5(NAMESPACE_URL, f"carepath:stay:{hospital_her_id}:{command_id}")


def message_id_for(stay_id: UUID, command_id: str) -> UUID:
    """The same send/record command on the same stay always names the same message."""
    return uuid5(NAMESPACE_URL, f"carepath:stay-message:{stay_id}:{command_id}")


def patient_stays_id_for(patient: dict[str, str]) -> UUID:
    return uuid5(NAMESPACE_URL, f"carepath:patient-stays:{patient['system']}:{patient['value']}")


class AdmissionNoticeAlreadySent(InvalidTransition):
    """The responsible hospital has already sent its Melding om innlagt pasient."""

    def __init__(self, message_id: str) -> None:
        super().__init__(
            f"the admission notice {message_id}", "already SENT", "send the admission notice"
        )


class Stay(MessageReceipts, CarepathAggregate):
    """One hospital stay of one patient, from admission to discharge."""

    # Its creation is declared with its class version (eventsourcing's upcasting): at version
    # 2 the home municipality is stored as `home_municipality_her_id`, as the public
    # PatientAdmitted version 2 names it. Stays admitted before were stored with
    # `municipality_her_id` and no class version (1); the upcaster renames it as each is read.

    class PatientAdmitted(CarepathAggregate.Created):
        meta: dict[str, Any]
        hospital_her_id: str
        ward: str
        admission_type: str
        referral_id: str | None
        home_municipality_her_id: str
        municipal_services_likely: bool
        existing_service_user: bool

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["home_municipality_her_id"] = state.pop("municipality_her_id")

    @classmethod
    def admit(
        cls,
        ctx: CommandContext,
        patient: dict[str, str],
        ward: str,
        admission_type: AdmissionType,
        referral_id: UUID | None,
        municipality_her_id: str,
        municipal_services_likely: bool,
        existing_service_user: bool,
    ) -> Stay:
        if ctx.actor.org_kind is not OrgKind.HOSPITAL:
            raise NotPermitted("only a hospital may admit a patient")
        if municipality_her_id == ctx.actor.her_id:
            raise InvalidArgument(
                "municipality_her_id", "must differ from the admitting hospital's HER-id"
            )
        return cls(
            meta=ctx.meta(patient),
            hospital_her_id=ctx.actor.her_id,
            ward=ward,
            admission_type=admission_type.value,
            referral_id=str(referral_id) if referral_id else None,
            home_municipality_her_id=municipality_her_id,
            municipal_services_likely=municipal_services_likely,
            existing_service_user=existing_service_user,
        )

    @staticmethod
    def create_id(meta: dict[str, Any], hospital_her_id: str, **_: Any) -> UUID:
        return stay_id_for(hospital_her_id, meta["command_id"])

    @event(PatientAdmitted)
    def __init__(
        self,
        meta: dict[str, Any],
        hospital_her_id: str,
        ward: str,
        admission_type: str,
        referral_id: str | None,
        home_municipality_her_id: str,
        municipal_services_likely: bool,
        existing_service_user: bool,
    ) -> None:
        self.patient: dict[str, str] = meta["patient"]
        self.admitting_hospital_her_id = hospital_her_id
        self.hospital_her_id = hospital_her_id  # the responsible hospital now
        self.hospitals: list[str] = [hospital_her_id]
        self.ward = ward
        self.admission_type = AdmissionType(admission_type)
        self.referral_id = referral_id
        self.municipality_her_id = home_municipality_her_id
        self.municipal_services_likely = municipal_services_likely
        self.existing_service_user = existing_service_user
        self.state = StayState.OPEN
        self.admitted_at: str = meta["occurred_at"]
        self.closed_at: str | None = None
        self.close_reason: CloseReason | None = None
        self.transfers: list[dict[str, str]] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self._handled(meta)

    # --- rules -------------------------------------------------------------------------------

    def _require_open(self, action: str) -> None:
        if self.state is not StayState.OPEN:
            raise InvalidTransition("the stay", self.state.value, action)

    def _require_responsible_hospital(self, ctx: CommandContext, action: str) -> None:
        if ctx.actor.org_kind is not OrgKind.HOSPITAL or ctx.actor.her_id != self.hospital_her_id:
            raise NotPermitted(f"only the hospital responsible for the stay may {action}")

    def _messages_of(self, kind: MessageType) -> list[dict[str, Any]]:
        return [m for m in self.messages.values() if m["type"] == kind.value]

    @property
    def health_information_due_at(self) -> datetime | None:
        """When Helseopplysninger are due for an existing service user; None when no deadline
        applies or the first Helseopplysninger have been sent."""
        if not self.existing_service_user or self._messages_of(MessageType.HEALTH_INFORMATION):
            return None
        return rules.health_information_due(datetime.fromisoformat(self.admitted_at))

    # --- commands: messages --------------------------------------------------------------------

    def send_admission_notice(self, ctx: CommandContext) -> None:
        """Melding om innlagt pasient: logistics only, to the home municipality. Each
        responsible hospital sends one."""
        self._require_responsible_hospital(ctx, "send the admission notice")
        self._require_open("send the admission notice")
        for notice in self._messages_of(MessageType.ADMISSION_NOTICE):
            if notice["from_her_id"] == self.hospital_her_id:
                raise AdmissionNoticeAlreadySent(notice["message_id"])
        self._admission_notice_sent(
            meta=ctx.meta(self.patient),
            message_id=str(message_id_for(self.id, ctx.command_id)),
            to_her_id=self.municipality_her_id,
        )

    @event("AdmissionNoticeSent")
    def _admission_notice_sent(self, meta: dict[str, Any], message_id: str, to_her_id: str) -> None:
        self._add_message(meta, message_id, MessageType.ADMISSION_NOTICE, to_her_id)
        self._handled(meta)

    def record_admission_report(self, ctx: CommandContext) -> None:
        """Innleggelsesrapport from the home municipality to the responsible hospital. It often
        arrives before the hospital's admission notice, which is normal."""
        if (
            ctx.actor.org_kind is not OrgKind.MUNICIPALITY
            or ctx.actor.her_id != self.municipality_her_id
        ):
            raise NotPermitted("only the patient's home municipality may send the admission report")
        self._require_open("record the admission report")
        self._admission_report_received(
            meta=ctx.meta(self.patient),
            message_id=str(message_id_for(self.id, ctx.command_id)),
            from_her_id=ctx.actor.her_id,
            to_her_id=self.hospital_her_id,
        )

    @event("AdmissionReportReceived")
    def _admission_report_received(
        self, meta: dict[str, Any], message_id: str, from_her_id: str, to_her_id: str
    ) -> None:
        self._add_message(meta, message_id, MessageType.ADMISSION_REPORT, to_her_id, from_her_id)
        self._handled(meta)

    def send_health_information(self, ctx: CommandContext) -> None:
        """Helseopplysninger to the home municipality; sent again whenever they change."""
        self._require_responsible_hospital(ctx, "send health information")
        self._require_open("send health information")
        self._health_information_sent(
            meta=ctx.meta(self.patient),
            message_id=str(message_id_for(self.id, ctx.command_id)),
            to_her_id=self.municipality_her_id,
            first=not self._messages_of(MessageType.HEALTH_INFORMATION),
        )

    @event("HealthInformationSent")
    def _health_information_sent(
        self, meta: dict[str, Any], message_id: str, to_her_id: str, first: bool
    ) -> None:
        self._add_message(meta, message_id, MessageType.HEALTH_INFORMATION, to_her_id)
        self._handled(meta)

    # --- commands: the stay --------------------------------------------------------------------

    def transfer(self, ctx: CommandContext, to_hospital_her_id: str, to_ward: str) -> None:
        """To another ward of the same hospital, or to another hospital, which then becomes
        responsible for the stay."""
        self._require_responsible_hospital(ctx, "transfer the patient")
        self._require_open("transfer the patient")
        if to_hospital_her_id == self.hospital_her_id and to_ward == self.ward:
            raise InvalidArgument("to_ward", "must differ from the current ward")
        if to_hospital_her_id == self.municipality_her_id:
            raise InvalidArgument(
                "to_hospital_her_id", "is the home municipality (discharge the patient instead)"
            )
        self._transferred(
            meta=ctx.meta(self.patient), to_hospital_her_id=to_hospital_her_id, to_ward=to_ward
        )

    @event("PatientTransferred")
    def _transferred(self, meta: dict[str, Any], to_hospital_her_id: str, to_ward: str) -> None:
        self.transfers.append(
            {
                "from_hospital_her_id": self.hospital_her_id,
                "from_ward": self.ward,
                "to_hospital_her_id": to_hospital_her_id,
                "to_ward": to_ward,
                "transferred_at": meta["occurred_at"],
            }
        )
        self.hospital_her_id = to_hospital_her_id
        self.ward = to_ward
        if to_hospital_her_id not in self.hospitals:
            self.hospitals.append(to_hospital_her_id)
        self._handled(meta)

    def close(self, ctx: CommandContext, reason: CloseReason) -> None:
        """Discharge: afterwards only receipts for messages already sent are recorded."""
        self._require_responsible_hospital(ctx, "close the stay")
        self._require_open("close the stay")
        if ctx.occurred_at < datetime.fromisoformat(self.admitted_at):
            raise InvalidArgument("metadata.occurred_at", "must not be before the admission")
        self._closed(meta=ctx.meta(self.patient), reason=reason.value)

    @event("StayClosed")
    def _closed(self, meta: dict[str, Any], reason: str) -> None:
        self.state = StayState.CLOSED
        self.close_reason = CloseReason(reason)
        self.closed_at = meta["occurred_at"]
        self._handled(meta)


class PatientStays(CarepathAggregate):
    """Index of one patient's stays, newest last, so that ListStays reads one aggregate.
    Saved in the same transaction as each new stay; its events are bookkeeping, not clinical
    facts, and are never published (`AdmissionsApplication.internal_event_types`)."""

    @classmethod
    def start(cls, ctx: CommandContext, patient: dict[str, str], stay_id: UUID) -> PatientStays:
        return cls(meta=ctx.meta(patient), stay_id=str(stay_id))

    @staticmethod
    def create_id(meta: dict[str, Any], **_: Any) -> UUID:
        return patient_stays_id_for(meta["patient"])

    @event("StayIndexCreated")
    def __init__(self, meta: dict[str, Any], stay_id: str) -> None:
        self.stay_ids: list[str] = [stay_id]
        self._handled(meta)

    def add(self, ctx: CommandContext, patient: dict[str, str], stay_id: UUID) -> None:
        if str(stay_id) not in self.stay_ids:
            self._indexed(meta=ctx.meta(patient), stay_id=str(stay_id))

    @event("StayIndexed")
    def _indexed(self, meta: dict[str, Any], stay_id: str) -> None:
        self.stay_ids.append(stay_id)
        self._handled(meta)
