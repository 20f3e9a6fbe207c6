"""The one decision of what a subscription receives, for both ways a vendor gets its events —
its queue (services/streams/delivery.py) and the gRPC stream (services/streams/stream.py):
which of a batch's events each subscription wants (`Route.wants`), which patients its served
organisations may see now under the access policy (`FactStore.members`: a care relationship,
no block of that organisation by the patient), a patient's block of the vendor's own
organisation, the message minimised for its purpose (`filters.vendor_body`) and the audit row
of each delivery of a patient's event.

The access facts are asked once per served organisation and batch, and only after the
projector has folded the batch's own events into them (an event may itself make an
organisation a party: a message's receiver, a stay's hospital), waited for up to FACTS_WAIT.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.streams import notifications
from services.streams.domain import NotificationFormat
from services.streams.filters import Route, Visible, seen_by, vendor_body
from services.streams.purposes import PURPOSES
from shared.access.facts import FactStore
from shared.access.model import Purpose
from shared.access.table import CLINICAL_READERS
from shared.actors import Actor, OrgKind
from shared.audit.log import Entry
from shared.events import Envelope
from shared.times import utc_iso

log = logging.getLogger(__name__)

#: The `call` of a delivery's audit row: `VendorDelivery/<subscription>` (queue and stream).
AUDIT_CALL = "VendorDelivery"
#: How long a batch waits for the projector to fold its own events into the access facts.
FACTS_WAIT = 10.0


@dataclass(frozen=True, slots=True)
class Selected:
    """One event for one subscription: the message it gets, and its audit row (None for an
    event about no patient)."""

    route: Route
    envelope: Envelope
    position: int
    body: dict[str, Any]
    entry: Entry | None


def message_bytes(body: dict[str, Any]) -> bytes:
    """A vendor message's JSON, the same bytes on the queue and on the stream."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def content_type(route: Route) -> str:
    """The media type of the subscription's messages (its format)."""
    if route.notification_format is NotificationFormat.FHIR_R5:
        return notifications.CONTENT_TYPE
    return notifications.NATIVE_CONTENT_TYPE


def message_of(selected: Selected, now: datetime) -> bytes:
    """What the subscription is sent for one selected event, on the queue and on the stream
    alike: its native message, or (FHIR_R5) the event notification carrying that message."""
    native = message_bytes(selected.body)
    route = selected.route
    if route.notification_format is NotificationFormat.NATIVE:
        return native
    return notifications.event_notification(
        route.name,
        route.state,
        selected.envelope.event_id,
        selected.position,
        selected.envelope.recorded,
        native,
        now,
    )


def patient_key(envelope: Envelope) -> str | None:
    p = envelope.patient
    return f"{p['system']}|{p['value']}" if p else None


class Selection:
    def __init__(
        self, facts: FactStore, clock: Callable[[], datetime], facts_wait: float = FACTS_WAIT
    ) -> None:
        self._facts = facts
        self._clock = clock
        self._facts_wait = facts_wait

    def select(
        self, wanted: Sequence[tuple[Envelope, Sequence[Route]]], positions: Mapping[str, int]
    ) -> list[Selected]:
        """Of the events and the subscriptions that want them (`Route.wants`), what each
        subscription receives, in the events' order."""
        wanted = [(e, rs) for e, rs in wanted if rs]
        if not wanted:
            return []
        self._await_facts([e.event_id for e, _ in wanted if e.patient])
        now = self._clock()
        visible = self._visible(wanted, now)
        keys = {k for e, _ in wanted if (k := patient_key(e)) is not None}
        vendors = {r.vendor.her_id for _, rs in wanted for r in rs}
        vendor_blocked = {
            her_id: frozenset(self._facts.blocked(her_id, keys)) for her_id in vendors
        }
        at = utc_iso(now)
        selected: list[Selected] = []
        for envelope, candidates in wanted:
            key = patient_key(envelope)
            for route in candidates:
                seen = None
                if key is not None:
                    seen = seen_by(route, key, visible, vendor_blocked[route.vendor.her_id])
                    if seen is None:
                        continue
                position = positions[envelope.event_id]
                body, _ = vendor_body(envelope, route, position)
                entry = None
                if seen is not None:
                    organisation, basis = seen
                    entry = Entry(
                        at=at,
                        request_id=envelope.event_id[:64],
                        actor_her_id=organisation.her_id,
                        actor_kind=organisation.kind,
                        actor_hpr=None,
                        patient_key=key,
                        call=f"{AUDIT_CALL}/{route.name}",
                        outcome="DELIVERED",
                        basis=basis.value,
                        purpose=Purpose(PURPOSES[route.purpose].audit_purpose).value,
                    )
                selected.append(Selected(route, envelope, position, body, entry))
        return selected

    def _await_facts(self, event_ids: Sequence[str]) -> None:
        """Decide on facts that include the batch's own events (the projector folds them in
        parallel). Waited for up to FACTS_WAIT seconds; then the facts as they are decide (a
        WARNING says so: the projector is behind). Facts another service's earlier event
        creates are not waited for (no order across services; README, "For vendors")."""
        pending = set(event_ids)
        delay, waited = 0.02, 0.0
        while pending:
            pending -= self._facts.applied(pending)
            if not pending or waited >= self._facts_wait:
                break
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, 1.0)
        if pending:
            log.warning(
                "deciding on the access facts without %d events the projector has not folded",
                len(pending),
            )

    def _visible(
        self, wanted: Sequence[tuple[Envelope, Sequence[Route]]], now: datetime
    ) -> Visible:
        """Per served organisation, which of the batch's patients it may see now."""
        keys_of: dict[str, set[str]] = {}
        kinds: dict[str, str] = {}
        for envelope, routes in wanted:
            key = patient_key(envelope)
            if key is None:
                continue
            for route in routes:
                for organisation in route.served:
                    keys_of.setdefault(organisation.her_id, set()).add(key)
                    kinds[organisation.her_id] = organisation.kind
        return {
            her_id: self._facts.members(
                Actor(her_id=her_id, org_kind=OrgKind(kinds[her_id])),
                sorted(keys),
                CLINICAL_READERS,
                now,
            )
            for her_id, keys in keys_of.items()
        }
