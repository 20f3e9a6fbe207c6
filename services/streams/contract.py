"""The streams service publishes no events of its own on an internal exchange: a
subscription's changes stay in its store (the delivery process reads them there), so every
event type is internal and nothing is mapped to the public contract."""

from __future__ import annotations

from shared.events.base import Contract

CONTRACT: Contract = {}

#: Every event the Subscription aggregate records (bookkeeping for the relay: never published).
INTERNAL = frozenset(
    {"SubscriptionCreated", "SubscriptionPaused", "SubscriptionResumed", "SubscriptionDeleted"}
)
