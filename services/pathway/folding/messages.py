"""A message between organisations as the pathway folds it: who must answer, since when."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PloMessage:
    name: str  # Norwegian name of the message, e.g. "Epikrise"
    to_her_id: str
    to_kind: str
    sent_at: str
    event_id: str  # the event that sent it (the mark on the pathway's timeline)
    status: str | None = None  # the receiver's AppRec (OK, REJECTED, OK_ERROR_IN_PART)

    @property
    def answered(self) -> bool:
        return self.status is not None
