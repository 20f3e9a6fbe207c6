"""A message between organisations as the pathway folds it: who must answer, since when."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PloMessage:
    name: str  # Norwegian name of the message, e.g. "Epikrise"
    to_her_id: str
    to_kind: str
    sent_at: str
    answered: bool = False
