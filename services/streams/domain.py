"""Vendor subscriptions: which events a vendor's system receives, for what, about whom.

`Subscription` (one per name): the vendor's organisation (from the registry's directory), a
coded purpose (services/streams/purposes.py), the filters — event types, source services,
the organisations it serves (a patient's events are delivered only while one of them has a
care relationship with the patient under the access policy and no block of it holds) — and
whether free text may be delivered. Its state is ACTIVE, PAUSED or DELETED; every change is
an event. Deleting is for good: the name is not taken again (its history stays).

Each subscription states the version of the vendor contract it receives
(`contract_version`, shared.events.catalogue.CONTRACT_VERSIONS): the current one unless named.
A subscription created before versions were stated received version 1, and reads so.

Each public method checks the rule, then triggers a past-tense event; the `@event` methods
only apply state, so replaying history never re-checks rules.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from services.streams.purposes import SubscriptionPurpose
from shared.domain import CarepathAggregate, CommandContext
from shared.errors import InvalidArgument, InvalidTransition
from shared.events.catalogue import CONTRACT_VERSIONS, CURRENT_CONTRACT

__all__ = [
    "NAME",
    "NotificationFormat",
    "Organisation",
    "Subscription",
    "SubscriptionState",
    "queue_of",
    "subscription_id_for",
]

#: A subscription's name: lower-case letters, digits and hyphens, 3–40 characters, starting
#: with a letter. It names the vendor's queue (`vendor.<name>`) and broker user, so it stays
#: inside what RabbitMQ's permission patterns match literally.
NAME = re.compile(r"^[a-z][a-z0-9-]{2,39}$")


class SubscriptionState(enum.StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    DELETED = "DELETED"


class NotificationFormat(enum.StrEnum):
    """What each message a subscription receives looks like (proto `NotificationFormat`
    without its prefix)."""

    #: carepath's own vendor envelope (README "For vendors", docs/events.md).
    NATIVE = "NATIVE"
    #: FHIR R5 topic-based subscription notifications: a Bundle of type
    #: `subscription-notification` whose SubscriptionStatus numbers the event, and the native
    #: message inside it as a Binary (services/streams/notifications.py, docs/fhir.md).
    FHIR_R5 = "FHIR_R5"


@dataclass(frozen=True, slots=True)
class Organisation:
    """An organisation as the registry's directory names it."""

    her_id: str
    kind: str
    name: str
    orgnr: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"her_id": self.her_id, "kind": self.kind, "name": self.name, "orgnr": self.orgnr}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Organisation:
        return cls(data["her_id"], data["kind"], data["name"], data.get("orgnr"))


def subscription_id_for(name: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"carepath:subscription:{name}")


def queue_of(name: str) -> str:
    """The vendor's own queue (and the routing key on carepath.vendor that reaches it)."""
    return f"vendor.{name}"


def check_contract_version(version: int) -> int:
    """A vendor contract version carepath serves (0: the current one)."""
    if version == 0:
        return CURRENT_CONTRACT
    if version not in CONTRACT_VERSIONS:
        served = ", ".join(str(v) for v in sorted(CONTRACT_VERSIONS))
        raise InvalidArgument("contract_version", f"must be one of {served} (0: the current)")
    return version


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise InvalidArgument(
            "name", "3–40 lower-case letters, digits or hyphens, starting with a letter"
        )
    return name


class Subscription(CarepathAggregate):
    """One vendor's subscription to carepath's events."""

    @classmethod
    def create(
        cls,
        ctx: CommandContext,
        name: str,
        vendor: Organisation,
        purpose: SubscriptionPurpose,
        event_types: list[str],
        sources: list[str],
        served: list[Organisation],
        free_text: bool,
        contract_version: int = 0,
        notification_format: NotificationFormat = NotificationFormat.NATIVE,
    ) -> Subscription:
        check_name(name)
        version = check_contract_version(contract_version)
        if not served:
            raise InvalidArgument(
                "served_her_ids", "name at least one organisation the subscription serves"
            )
        return cls(
            meta=ctx.meta({}),
            name=name,
            vendor=vendor.as_dict(),
            purpose=purpose.value,
            event_types=sorted(set(event_types)),
            sources=sorted(set(sources)),
            served=[o.as_dict() for o in sorted(served, key=lambda o: o.her_id)],
            free_text=free_text,
            contract_version=version,
            notification_format=notification_format.value,
        )

    @staticmethod
    def create_id(name: str, **_: Any) -> UUID:
        return subscription_id_for(name)

    @event("SubscriptionCreated")
    def __init__(
        self,
        meta: dict[str, Any],
        name: str,
        vendor: dict[str, Any],
        purpose: str,
        event_types: list[str],
        sources: list[str],
        served: list[dict[str, Any]],
        free_text: bool,
        contract_version: int = 1,
        notification_format: str = NotificationFormat.NATIVE.value,
    ) -> None:
        self.name = name
        self.vendor = Organisation.from_dict(vendor)
        self.purpose = SubscriptionPurpose(purpose)
        self.event_types: tuple[str, ...] = tuple(event_types)
        self.sources: tuple[str, ...] = tuple(sources)
        self.served: tuple[Organisation, ...] = tuple(Organisation.from_dict(o) for o in served)
        self.free_text = free_text
        self.contract_version = contract_version
        #: Subscriptions created before formats were stated receive the native envelope.
        self.notification_format = NotificationFormat(notification_format)
        self.state = SubscriptionState.ACTIVE
        self.created_at: str = meta["occurred_at"]
        self._handled(meta)

    @property
    def queue(self) -> str:
        return queue_of(self.name)

    # --- commands --------------------------------------------------------------------------

    def pause(self, ctx: CommandContext) -> None:
        """Delivery to the vendor stops; events keep queueing for it (none is lost)."""
        if self.state is SubscriptionState.PAUSED:
            return
        self._check_not_deleted("pause it")
        self._paused(meta=ctx.meta({}))

    @event("SubscriptionPaused")
    def _paused(self, meta: dict[str, Any]) -> None:
        self.state = SubscriptionState.PAUSED
        self._handled(meta)

    def resume(self, ctx: CommandContext) -> None:
        """Delivery goes on with what queued while paused."""
        if self.state is SubscriptionState.ACTIVE:
            return
        self._check_not_deleted("resume it")
        self._resumed(meta=ctx.meta({}))

    @event("SubscriptionResumed")
    def _resumed(self, meta: dict[str, Any]) -> None:
        self.state = SubscriptionState.ACTIVE
        self._handled(meta)

    def delete(self, ctx: CommandContext) -> None:
        """For good: the vendor's queue, its binding and its broker user go."""
        self._check_not_deleted("delete it")
        self._deleted(meta=ctx.meta({}))

    @event("SubscriptionDeleted")
    def _deleted(self, meta: dict[str, Any]) -> None:
        self.state = SubscriptionState.DELETED
        self._handled(meta)

    def _check_not_deleted(self, action: str) -> None:
        if self.state is SubscriptionState.DELETED:
            raise InvalidTransition("the subscription", "DELETED", action)
