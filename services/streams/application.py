"""Subscription commands: load (or create) → change → save, idempotent on the calling
organisation's command id; each change is then carried out on the broker (the vendor's queue,
binding and user: services/streams/provisioning.py), which is idempotent too, so a retried
command whose broker step failed completes it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Self
from uuid import UUID

from services.streams import streamlog
from services.streams.contract import CONTRACT, INTERNAL
from services.streams.domain import (
    NotificationFormat,
    Organisation,
    Subscription,
    SubscriptionState,
    check_name,
    subscription_id_for,
)
from services.streams.purposes import SubscriptionPurpose
from shared import config
from shared.config import Pool
from shared.domain import CommandContext
from shared.errors import AlreadyExists, NotFound
from shared.sql import engine
from shared.store import CarepathApplication

SUBSCRIPTION = "subscription"


class StreamsApplication(CarepathApplication):
    name = "streams"
    contract = CONTRACT
    internal_event_types = INTERNAL

    @classmethod
    def from_url(cls, url: str, pool: Pool | None = None) -> Self:
        """The application on the store at `url`; the stream log's table beside it is
        created if missing too (so `migrate` creates both)."""
        app = super().from_url(url, pool)
        log_engine = engine(url, config.pool("stream-log"))
        try:
            streamlog.migrate(log_engine)
        finally:
            log_engine.dispose()
        return app

    def create_subscription(
        self,
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
        """ALREADY_EXISTS (naming `name`) when the name is taken, deleted ones included; a
        retry of the same command returns the first result."""
        subscription_id = subscription_id_for(check_name(name))
        try:
            existing = self.load(Subscription, subscription_id, SUBSCRIPTION)
        except NotFound:
            existing = None
        if existing is not None and not existing.has_handled(ctx):
            raise AlreadyExists(f"name: a subscription {name!r} exists already", field="name")
        return self.create_once(
            Subscription,
            subscription_id,
            ctx,
            SUBSCRIPTION,
            lambda: Subscription.create(
                ctx,
                name,
                vendor,
                purpose,
                event_types,
                sources,
                served,
                free_text,
                contract_version,
                notification_format,
            ),
        )

    def get_subscription(self, name: str) -> Subscription:
        return self.load(Subscription, subscription_id_for(check_name(name)), SUBSCRIPTION)

    def pause_subscription(self, ctx: CommandContext, name: str) -> Subscription:
        return self.change(
            Subscription, subscription_id_for(check_name(name)), ctx, SUBSCRIPTION,
            lambda s: s.pause(ctx),
        )  # fmt: skip

    def resume_subscription(self, ctx: CommandContext, name: str) -> Subscription:
        return self.change(
            Subscription, subscription_id_for(check_name(name)), ctx, SUBSCRIPTION,
            lambda s: s.resume(ctx),
        )  # fmt: skip

    def delete_subscription(self, ctx: CommandContext, name: str) -> Subscription:
        return self.change(
            Subscription, subscription_id_for(check_name(name)), ctx, SUBSCRIPTION,
            lambda s: s.delete(ctx),
        )  # fmt: skip

    def subscriptions(self, include_deleted: bool = False) -> list[Subscription]:
        """Every subscription, by name. Read from the notification log's creations: there
        are a few hundred at most (one per vendor system and purpose)."""
        found: list[object] = [self.repository.get(i) for i in self._created_ids()]
        return sorted(
            (
                s
                for s in found
                if isinstance(s, Subscription)
                and (include_deleted or s.state is not SubscriptionState.DELETED)
            ),
            key=lambda s: s.name,
        )

    def _created_ids(self) -> Iterator[UUID]:
        start = None
        while True:
            page = self.recorder.select_notifications(
                start or 1, 500, inclusive_of_start=start is None
            )
            if not page:
                return
            for n in page:
                if n.topic.endswith(":Subscription.SubscriptionCreated"):
                    yield UUID(str(n.originator_id))
            start = page[-1].id

    def head(self) -> int:
        """The store's newest notification id: it changes whenever a subscription does."""
        return self.recorder.max_notification_id() or 0
