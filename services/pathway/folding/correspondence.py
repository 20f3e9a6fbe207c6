"""The correspondence part of the fold: the PLO messages between the municipality and the GP
(Forespørsel and its answer, Medisinske opplysninger, Helseopplysninger til lege, Orientering
om tjenestetilbud, Dialogmelding) with their receipts, and whether a request still waits for its
answer (pure, no I/O)."""

from __future__ import annotations

from services.pathway.folding.model import CorrespondenceView, PloMessage
from services.pathway.folding.summaries import CORRESPONDENCE_NAMES
from shared.events import Envelope
from shared.events import correspondence as co
from shared.times import utc_iso


def step_correspondence(view: CorrespondenceView | None, e: Envelope) -> CorrespondenceView | None:
    """The correspondence after one more of its events (in version order); None while its
    first event has not arrived (the fold waits for it)."""
    when = utc_iso(e.occurred_at)
    if view is None:
        if not isinstance(e.data, co.CorrespondenceMessageSent):
            return None
        sent = e.data
        view = CorrespondenceView(
            correspondence_id=e.aggregate_id,
            message_type=sent.message_type,
            from_her_id=sent.from_her_id,
            from_kind=sent.from_kind,
            to_her_id=sent.to_her_id,
            to_kind=sent.to_kind,
            sent_at=when,
            request_message_id=sent.message_id if sent.message_type == "REQUEST" else None,
        )
        view.messages[sent.message_id] = PloMessage(
            CORRESPONDENCE_NAMES[sent.message_type], sent.to_her_id, sent.to_kind, when, e.event_id
        )
        return view
    match e.data:
        case co.CorrespondenceRequestAnswered() as answer:
            view.answered_at = when
            view.messages[answer.message_id] = PloMessage(
                CORRESPONDENCE_NAMES[answer.message_type], answer.to_her_id, answer.to_kind, when,
                e.event_id,
            )  # fmt: skip
        case co.MessageReceiptRecorded(message_id=message_id, status=status) if (
            message_id in view.messages
        ):
            view.messages[message_id].status = status
    return view
