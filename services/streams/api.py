"""SubscriptionAdminService over gRPC: carepath's operators manage the vendors'
subscriptions. Who may call is the access table's business (role OPERATOR,
shared/access/table.py), applied by the shared interceptor with the audit log before any of
this runs; errors are raised as domain errors and mapped to status codes there too."""

from __future__ import annotations

from typing import Any

import grpc
import sqlalchemy as sa

from carepath.v1 import common_pb2, streams_pb2, streams_pb2_grpc
from services.streams.application import StreamsApplication
from services.streams.domain import (
    NotificationFormat,
    Organisation,
    Subscription,
    SubscriptionState,
)
from services.streams.provisioning import VendorBroker, new_password
from services.streams.purposes import SubscriptionPurpose
from shared import api
from shared.access.enforce import AccessControl, Resolver, current_call
from shared.access.facts import FactStore
from shared.access.model import organisations
from shared.actors import CARE_KINDS, OrgKind
from shared.broker import ProvisionError
from shared.domain import CommandContext
from shared.errors import InvalidArgument
from shared.events import BY_SOURCE, SOURCES
from shared.grpc_server import Failure

PURPOSE_FROM_PB = {
    streams_pb2.SubscriptionPurpose.Value(f"SUBSCRIPTION_PURPOSE_{p.value}"): p
    for p in SubscriptionPurpose
}
PURPOSE_TO_PB = {p: pb for pb, p in PURPOSE_FROM_PB.items()}
STATE_TO_PB = {
    s: streams_pb2.SubscriptionState.Value(f"SUBSCRIPTION_STATE_{s.value}")
    for s in SubscriptionState
}
FORMAT_TO_PB = {
    f: streams_pb2.NotificationFormat.Value(f"NOTIFICATION_FORMAT_{f.value}")
    for f in NotificationFormat
}
FORMAT_FROM_PB = {
    **{pb: f for f, pb in FORMAT_TO_PB.items()},
    streams_pb2.NOTIFICATION_FORMAT_UNSPECIFIED: NotificationFormat.NATIVE,
}
#: Every event type a vendor can be sent (a source's catalogue).
EVENT_TYPES = {cls.event_type() for classes in BY_SOURCE.values() for cls in classes}


def subscription_to_pb(s: Subscription, broker: VendorBroker) -> streams_pb2.Subscription:
    def organisation(o: Organisation) -> common_pb2.Organisation:
        kind = api.ORG_KIND_TO_PB.get(OrgKind(o.kind), common_pb2.ORGANISATION_KIND_UNSPECIFIED)
        return common_pb2.Organisation(her_id=o.her_id, kind=kind)

    return streams_pb2.Subscription(
        name=s.name,
        vendor=organisation(s.vendor),
        vendor_name=s.vendor.name,
        subscription_purpose=PURPOSE_TO_PB[s.purpose],
        event_types=list(s.event_types),
        sources=list(s.sources),
        served=[organisation(o) for o in s.served],
        free_text=s.free_text,
        state=STATE_TO_PB[s.state],
        queue=s.queue,
        broker_user=broker.user(s.name),
        created_at=api.timestamp(s.created_at),
        version=s.version,
        contract_version=s.contract_version,
        notification_format=FORMAT_TO_PB[s.notification_format],
    )


class Directory:
    """The registry's organisation directory, as the access facts hold it."""

    def __init__(self, facts: FactStore) -> None:
        self._facts = facts

    def by_her_id(self, her_id: str, field: str) -> Organisation:
        rows = self._facts.organisations([her_id])
        if not rows:
            raise InvalidArgument(field, f"HER-id {her_id} is not in the organisation directory")
        row = rows[0]
        return Organisation(row.her_id, row.kind, row.name, row.orgnr)

    def by_orgnr(self, orgnr: str, field: str) -> Organisation:
        o = organisations
        with self._facts.engine.connect() as conn:
            found = conn.execute(sa.select(o).where(o.c.orgnr == orgnr)).first()
        if found is None:
            raise InvalidArgument(
                field, f"organisation number {orgnr} is not in the organisation directory"
            )
        return Organisation(found.her_id, found.kind, found.name, found.orgnr)


class Subscriptions:
    """The commands, shared by the gRPC servicer and the operator's command line: each change
    is stored, then carried out on the broker (idempotent, so a retried command completes a
    broker step that failed)."""

    def __init__(self, app: StreamsApplication, directory: Directory, broker: VendorBroker) -> None:
        self.app = app
        self.directory = directory
        self.broker = broker

    def create(
        self,
        ctx: CommandContext,
        name: str,
        vendor_her_id: str,
        vendor_orgnr: str,
        purpose: SubscriptionPurpose,
        event_types: list[str],
        sources: list[str],
        served_her_ids: list[str],
        free_text: bool,
        contract_version: int = 0,
        notification_format: NotificationFormat = NotificationFormat.NATIVE,
    ) -> tuple[Subscription, str]:
        if bool(vendor_her_id.strip()) == bool(vendor_orgnr.strip()):
            raise InvalidArgument("vendor_her_id", "give the vendor's HER-id or its orgnr")
        if vendor_her_id.strip():
            vendor = self.directory.by_her_id(
                api.her_id(vendor_her_id, "vendor_her_id"), "vendor_her_id"
            )
        else:
            number = api.orgnr(vendor_orgnr, "vendor_orgnr")
            assert number is not None
            vendor = self.directory.by_orgnr(number, "vendor_orgnr")
        for i, source in enumerate(sources):
            if source not in SOURCES:
                raise InvalidArgument(f"sources[{i}]", f"must be one of {', '.join(SOURCES)}")
        for i, event_type in enumerate(event_types):
            if event_type not in EVENT_TYPES:
                raise InvalidArgument(f"event_types[{i}]", "is no event type of docs/events.md")
        served: list[Organisation] = []
        for i, her_id in enumerate(served_her_ids):
            field = f"served_her_ids[{i}]"
            organisation = self.directory.by_her_id(api.her_id(her_id, field), field)
            if OrgKind(organisation.kind) not in CARE_KINDS:
                raise InvalidArgument(field, "must be a municipality, GP office or hospital")
            served.append(organisation)
        subscription = self.app.create_subscription(
            ctx, name, vendor, purpose, event_types, sources, served, free_text, contract_version,
            notification_format,
        )  # fmt: skip
        password = new_password()
        self._broker(
            lambda: self.broker.provision(
                subscription.name,
                subscription.queue,
                password,
                paused=subscription.state is not SubscriptionState.ACTIVE,
            )
        )
        return subscription, password

    def pause(self, ctx: CommandContext, name: str) -> Subscription:
        subscription = self.app.pause_subscription(ctx, name)
        self._broker(lambda: self.broker.pause(subscription.name))
        return subscription

    def resume(self, ctx: CommandContext, name: str) -> Subscription:
        subscription = self.app.resume_subscription(ctx, name)
        self._broker(lambda: self.broker.resume(subscription.name, subscription.queue))
        return subscription

    def delete(self, ctx: CommandContext, name: str) -> Subscription:
        subscription = self.app.delete_subscription(ctx, name)
        self._broker(lambda: self.broker.delete(subscription.name, subscription.queue))
        return subscription

    @staticmethod
    def _broker(step: Any) -> None:
        try:
            step()
        except ProvisionError as exc:
            raise Failure(
                grpc.StatusCode.UNAVAILABLE,
                "the broker cannot carry out the change now; retry the same command",
                "BROKER_UNAVAILABLE",
            ) from exc


class SubscriptionAdminServicer(streams_pb2_grpc.SubscriptionAdminServiceServicer):
    def __init__(self, subscriptions: Subscriptions) -> None:
        self._subscriptions = subscriptions

    def _pb(self, s: Subscription) -> streams_pb2.Subscription:
        return subscription_to_pb(s, self._subscriptions.broker)

    def CreateSubscription(
        self, request: streams_pb2.CreateSubscriptionRequest, context: grpc.ServicerContext
    ) -> streams_pb2.CreatedSubscription:
        ctx = api.command_context(request, current_call().actor)
        if request.subscription_purpose not in PURPOSE_FROM_PB:
            raise InvalidArgument(
                "subscription_purpose", "is required (a coded SubscriptionPurpose)"
            )
        if request.notification_format not in FORMAT_FROM_PB:
            raise InvalidArgument("notification_format", "is not a known NotificationFormat")
        subscription, password = self._subscriptions.create(
            ctx,
            request.name.strip(),
            request.vendor_her_id,
            request.vendor_orgnr,
            PURPOSE_FROM_PB[request.subscription_purpose],
            [t.strip() for t in request.event_types],
            [s.strip() for s in request.sources],
            list(request.served_her_ids),
            request.free_text,
            request.contract_version,
            FORMAT_FROM_PB[request.notification_format],
        )
        return streams_pb2.CreatedSubscription(
            subscription=self._pb(subscription), broker_password=password
        )

    def ListSubscriptions(
        self, request: streams_pb2.ListSubscriptionsRequest, context: grpc.ServicerContext
    ) -> streams_pb2.ListSubscriptionsResponse:
        found = self._subscriptions.app.subscriptions(request.include_deleted)
        return streams_pb2.ListSubscriptionsResponse(subscriptions=[self._pb(s) for s in found])

    def PauseSubscription(
        self, request: streams_pb2.SubscriptionCommand, context: grpc.ServicerContext
    ) -> streams_pb2.Subscription:
        ctx = api.command_context(request, current_call().actor)
        return self._pb(self._subscriptions.pause(ctx, request.name.strip()))

    def ResumeSubscription(
        self, request: streams_pb2.SubscriptionCommand, context: grpc.ServicerContext
    ) -> streams_pb2.Subscription:
        ctx = api.command_context(request, current_call().actor)
        return self._pb(self._subscriptions.resume(ctx, request.name.strip()))

    def DeleteSubscription(
        self, request: streams_pb2.SubscriptionCommand, context: grpc.ServicerContext
    ) -> streams_pb2.Subscription:
        ctx = api.command_context(request, current_call().actor)
        return self._pb(self._subscriptions.delete(ctx, request.name.strip()))


SERVICE_NAMES = (streams_pb2.DESCRIPTOR.services_by_name["SubscriptionAdminService"].full_name,)


def resolvers(app: StreamsApplication) -> dict[str, Resolver]:
    """Subscription calls are about no patient: nothing to resolve."""
    return {}


def register(app: StreamsApplication, access: AccessControl) -> Any:
    subscriptions = Subscriptions(app, Directory(access.facts), VendorBroker())

    def _register(server: grpc.Server) -> None:
        streams_pb2_grpc.add_SubscriptionAdminServiceServicer_to_server(
            SubscriptionAdminServicer(subscriptions), server
        )

    return _register
