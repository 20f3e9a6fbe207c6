"""Events of the correspondence service (exchange `correspondence.events`): the PLO messages
between the municipality and the patient's GP (fastlege) — Forespørsel and Svar på forespørsel,
Medisinske opplysninger, Helseopplysninger til lege, Orientering om tjenestetilbud and
Dialogmelding — each with its application receipt (AppRec).

One correspondence is one conversation: the message that opens it and, for a Forespørsel, its
answer. The envelope's aggregate_id is the correspondence's id."""

from __future__ import annotations

from typing import ClassVar, Literal

from shared.events.base import AppRecErrors, AppRecStatus, HerId, OrgKind, Payload, Text, Uuid

#: The PLO message types of the correspondence (names as in the message standard):
#: REQUEST Forespørsel, REQUEST_ANSWER Svar på forespørsel, MEDICAL_INFORMATION Medisinske
#: opplysninger (GP → municipality), HEALTH_INFORMATION_TO_GP Helseopplysninger til lege
#: (municipality → GP), SERVICE_NOTICE Orientering om tjenestetilbud (municipality → GP),
#: DIALOGUE Dialogmelding (either way).
CorrespondenceMessageType = Literal[
    "REQUEST",
    "REQUEST_ANSWER",
    "MEDICAL_INFORMATION",
    "HEALTH_INFORMATION_TO_GP",
    "SERVICE_NOTICE",
    "DIALOGUE",
]


class CorrespondenceEvent(Payload):
    """An event of one correspondence between the municipality and the GP."""

    source: ClassVar[str] = "correspondence"


class CorrespondenceMessageSent(CorrespondenceEvent):
    """A municipality or the patient's fastlege sent a PLO message that opens a correspondence.
    The receiver comes from the registers (the fastlege from Fastlegeregisteret, the
    municipality the patient lives or stays in from Folkeregisteret), never from the sender.

    A Forespørsel (REQUEST) waits for its answer (Svar på forespørsel, or Medisinske
    opplysninger from the GP) by a deadline of rules.toml; every message waits for its AppRec."""

    message_id: Uuid
    """The message's id; its application receipt and its answer name it."""
    message_type: CorrespondenceMessageType
    """Which PLO message it is."""
    from_her_id: HerId
    """The sending organisation (the municipality or the GP office)."""
    from_kind: OrgKind
    """The sender's kind (MUNICIPALITY or GP)."""
    to_her_id: HerId
    """The receiving organisation, as the registers name it for the patient."""
    to_kind: OrgKind
    """The receiver's kind (GP or MUNICIPALITY)."""
    text: Text
    """The message's content: clinical free text."""


class CorrespondenceRequestAnswered(CorrespondenceEvent):
    """The receiver of a Forespørsel answered it: with *Svar på forespørsel*, or (a GP asked by
    the municipality) with *Medisinske opplysninger*. The answer-due task closes."""

    request_message_id: Uuid
    """The Forespørsel answered."""
    message_id: Uuid
    """The answer's own id; its application receipt names it."""
    message_type: CorrespondenceMessageType
    """REQUEST_ANSWER or MEDICAL_INFORMATION."""
    to_her_id: HerId
    """The receiver of the answer: the organisation that asked."""
    to_kind: OrgKind
    """The receiver's kind."""
    text: Text
    """The answer's content: clinical free text."""


class MessageReceiptRecorded(CorrespondenceEvent):
    """The receiver of one of the correspondence's messages recorded its application receipt
    (AppRec)."""

    message_id: Uuid
    """The message answered."""
    status: AppRecStatus
    """The receipt's status."""
    errors: AppRecErrors
    """The errors found (none for OK; at least one otherwise)."""


EVENTS: tuple[type[Payload], ...] = (
    CorrespondenceMessageSent,
    CorrespondenceRequestAnswered,
    MessageReceiptRecorded,
)
