"""The correspondence between the municipality and the patient's GP (fastlege): the PLO
messages a care coordinator waits on every day.

- *Forespørsel* (REQUEST), either way, waits for its answer: *Svar på forespørsel*
  (REQUEST_ANSWER), or — the GP answering the municipality — *Medisinske opplysninger*.
- *Medisinske opplysninger* (MEDICAL_INFORMATION): GP → municipality, often the answer to a
  request, also sent on its own.
- *Helseopplysninger til lege* (HEALTH_INFORMATION_TO_GP) and *Orientering om tjenestetilbud*
  (SERVICE_NOTICE): municipality → GP.
- *Dialogmelding* (DIALOGUE): either way.

Each message is answered by its receiver's application receipt (AppRec, `MessageReceipts`).

Who may write to whom is the registers' to say, never the request's: the receiver of a
municipality's message is the patient's fastlege (Fastlegeregisteret); the receiver of a GP's
message is a municipality the patient lives or stays in (Folkeregisteret), or one of that
municipality's services the GP names — a legevakt, a home-nursing district — which the
organisation directory (Adresseregisteret) lists under it. The caller hands the rules what the
registers say now (`Registered`); a sender that is not a party of the right kind is refused.

One `Correspondence` is one conversation: the message that opens it and, for a request, its
answer. Each public method checks the rule and who may act, then triggers a past-tense event;
the `@event` methods only apply state, so replaying history never re-checks rules.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from shared.actors import OrgKind
from shared.apprec import MessageReceipts
from shared.domain import CarepathAggregate, CommandContext
from shared.errors import InvalidArgument, InvalidTransition, NotPermitted

__all__ = [
    "Correspondence",
    "MessageType",
    "NoFastlege",
    "NoMunicipality",
    "Registered",
    "correspondence_id_for",
]


class MessageType(enum.StrEnum):
    """The PLO messages between municipality and GP, named as in the message standard."""

    REQUEST = "REQUEST"  # Forespørsel
    REQUEST_ANSWER = "REQUEST_ANSWER"  # Svar på forespørsel
    MEDICAL_INFORMATION = "MEDICAL_INFORMATION"  # Medisinske opplysninger
    HEALTH_INFORMATION_TO_GP = "HEALTH_INFORMATION_TO_GP"  # Helseopplysninger til lege
    SERVICE_NOTICE = "SERVICE_NOTICE"  # Orientering om tjenestetilbud
    DIALOGUE = "DIALOGUE"  # Dialogmelding


#: Which kind of organisation may open a correspondence with each message type.
SENDERS: dict[MessageType, frozenset[OrgKind]] = {
    MessageType.REQUEST: frozenset({OrgKind.MUNICIPALITY, OrgKind.GP}),
    MessageType.MEDICAL_INFORMATION: frozenset({OrgKind.GP}),
    MessageType.HEALTH_INFORMATION_TO_GP: frozenset({OrgKind.MUNICIPALITY}),
    MessageType.SERVICE_NOTICE: frozenset({OrgKind.MUNICIPALITY}),
    MessageType.DIALOGUE: frozenset({OrgKind.MUNICIPALITY, OrgKind.GP}),
}
#: How a request may be answered, by the kind of the organisation answering.
ANSWERS: dict[OrgKind, frozenset[MessageType]] = {
    OrgKind.GP: frozenset({MessageType.REQUEST_ANSWER, MessageType.MEDICAL_INFORMATION}),
    OrgKind.MUNICIPALITY: frozenset({MessageType.REQUEST_ANSWER}),
}


class NoFastlege(InvalidTransition):
    """The registers name no fastlege for the patient now (→ FAILED_PRECONDITION)."""

    def __init__(self) -> None:
        super().__init__("the patient", "without a fastlege in Fastlegeregisteret", "write to")


class NoMunicipality(InvalidTransition):
    """The registers name no municipality the patient lives or stays in (→ FAILED_PRECONDITION)."""

    def __init__(self) -> None:
        super().__init__("the patient", "without a municipality in Folkeregisteret", "write to")


@dataclass(frozen=True, slots=True)
class Registered:
    """What the registers say about the patient now: the fastlege's office (None: none) and
    the municipalities the patient stays in (oppholdskommune) and lives in, in that order; and,
    for a receiver the GP names that is not one of them, the municipality the organisation
    directory puts it under (`unit_of`: a legevakt or another municipal service)."""

    fastlege_her_id: str | None
    municipalities: tuple[str, ...]
    unit_of: tuple[tuple[str, str], ...] = ()

    def serves_the_patient(self, her_id: str) -> bool:
        """A municipality the patient stays or lives in, or a service the directory lists
        under one of them."""
        parent = dict(self.unit_of).get(her_id)
        return her_id in self.municipalities or parent in self.municipalities


def correspondence_id_for(sender_her_id: str, command_id: str) -> UUID:
    """The same send command from the same organisation always names the same correspondence."""
    return uuid5(NAMESPACE_URL, f"carepath:correspondence:{sender_her_id}:{command_id}")


def message_id_for(correspondence_id: UUID, her_id: str, command_id: str) -> UUID:
    """The same command from the same organisation always names the same message."""
    return uuid5(
        NAMESPACE_URL, f"carepath:correspondence-message:{correspondence_id}:{her_id}:{command_id}"
    )


def receiver_of(
    ctx: CommandContext, kind: MessageType, registered: Registered, to_her_id: str | None
) -> tuple[str, OrgKind]:
    """The receiver the registers give the sender: a municipality writes to the patient's
    fastlege; the fastlege writes to a municipality the patient stays or lives in (the one
    named, else the oppholdskommune before the bostedskommune)."""
    actor = ctx.actor
    if actor.org_kind not in SENDERS[kind]:
        raise NotPermitted(f"a {actor.org_kind.value} may not send {kind.value}")
    if actor.org_kind is OrgKind.MUNICIPALITY:
        if actor.her_id not in registered.municipalities:
            raise NotPermitted("only a municipality the patient lives or stays in may write")
        if to_her_id is not None:
            raise InvalidArgument(
                "to_her_id", "must be empty: a municipality writes to the registered fastlege"
            )
        if registered.fastlege_her_id is None:
            raise NoFastlege()
        return registered.fastlege_her_id, OrgKind.GP
    if actor.her_id != registered.fastlege_her_id:
        raise NotPermitted("only the patient's fastlege may write to the municipality")
    if not registered.municipalities:
        raise NoMunicipality()
    if to_her_id is None:
        return registered.municipalities[0], OrgKind.MUNICIPALITY
    if not registered.serves_the_patient(to_her_id):
        raise InvalidArgument(
            "to_her_id",
            "is neither a municipality the registers say the patient lives or stays in nor one "
            "of its services in the organisation directory",
        )
    return to_her_id, OrgKind.MUNICIPALITY


class Correspondence(MessageReceipts, CarepathAggregate):
    """One conversation between a municipality and the patient's GP: the message that opens
    it and, for a request, its answer; each message with its receipt."""

    @classmethod
    def send(
        cls,
        ctx: CommandContext,
        patient: dict[str, str],
        kind: MessageType,
        text: str,
        registered: Registered,
        to_her_id: str | None = None,
    ) -> Correspondence:
        """Open a correspondence with a message to the receiver the registers give."""
        if kind is MessageType.REQUEST_ANSWER:
            raise InvalidArgument("message_type", "a Svar på forespørsel answers a request")
        receiver, receiver_kind = receiver_of(ctx, kind, registered, to_her_id)
        correspondence_id = correspondence_id_for(ctx.actor.her_id, ctx.command_id)
        return cls(
            meta=ctx.meta(patient),
            message_id=str(message_id_for(correspondence_id, ctx.actor.her_id, ctx.command_id)),
            message_type=kind.value,
            from_her_id=ctx.actor.her_id,
            from_kind=ctx.actor.org_kind.value,
            to_her_id=receiver,
            to_kind=receiver_kind.value,
            text=text,
        )

    @staticmethod
    def create_id(meta: dict[str, Any], **_: Any) -> UUID:
        return correspondence_id_for(meta["actor"]["her_id"], meta["command_id"])

    @event("CorrespondenceMessageSent")
    def __init__(
        self,
        meta: dict[str, Any],
        message_id: str,
        message_type: str,
        from_her_id: str,
        from_kind: str,
        to_her_id: str,
        to_kind: str,
        text: str,
    ) -> None:
        self.patient: dict[str, str] = meta["patient"]
        self.kind = MessageType(message_type)
        self.opened_by = from_her_id
        self.opened_by_kind = OrgKind(from_kind)
        self.receiver = to_her_id
        self.receiver_kind = OrgKind(to_kind)
        self.opened_at: str = meta["occurred_at"]
        self.first_message_id = message_id
        self.answer_message_id: str | None = None
        self.answered_at: str | None = None
        self.messages: dict[str, dict[str, Any]] = {}
        self._add_message(meta, message_id, message_type, to_her_id)
        self.messages[message_id]["text"] = text
        self._handled(meta)

    @property
    def awaits_answer(self) -> bool:
        """A request not answered yet."""
        return self.kind is MessageType.REQUEST and self.answer_message_id is None

    def answer(self, ctx: CommandContext, kind: MessageType, text: str) -> None:
        """The request's receiver answers it, once."""
        action = "answer the request"
        if ctx.actor.her_id != self.receiver:
            raise NotPermitted("only the request's receiver may answer it")
        if self.kind is not MessageType.REQUEST:
            raise InvalidTransition(f"the {self.kind.value} message", "not a request", action)
        if self.answer_message_id is not None:
            raise InvalidTransition("the request", "already answered", action)
        if kind not in ANSWERS.get(ctx.actor.org_kind, frozenset()):
            raise InvalidArgument(
                "message_type", f"a {ctx.actor.org_kind.value} cannot answer with {kind.value}"
            )
        self._answered(
            meta=ctx.meta(self.patient),
            request_message_id=self.first_message_id,
            message_id=str(message_id_for(self.id, ctx.actor.her_id, ctx.command_id)),
            message_type=kind.value,
            to_her_id=self.opened_by,
            to_kind=self.opened_by_kind.value,
            text=text,
        )

    @event("CorrespondenceRequestAnswered")
    def _answered(
        self,
        meta: dict[str, Any],
        request_message_id: str,
        message_id: str,
        message_type: str,
        to_her_id: str,
        to_kind: str,
        text: str,
    ) -> None:
        self.answer_message_id = message_id
        self.answered_at = meta["occurred_at"]
        self._add_message(meta, message_id, message_type, to_her_id)
        self.messages[message_id]["text"] = text
        self._handled(meta)
