"""The event-sourced application base every domain service uses: store selection from a
database URL, the transcodings our events need, and idempotent command handling.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, Self, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Transcoding

from shared.config import StoreSettings
from shared.domain import CarepathAggregate
from shared.errors import DomainError, NotFound

A = TypeVar("A", bound=CarepathAggregate)

#: Attempts for a command that races with another change of the same aggregate.
CONFLICT_RETRIES = 5


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class Conflict(DomainError):
    """The aggregate kept changing under the command (→ FAILED_PRECONDITION; safe to retry)."""


class CarepathApplication(Application[UUID]):
    """An eventsourcing Application with carepath's conventions."""

    name = "carepath"

    @classmethod
    def from_url(cls, url: str) -> Self:
        return cls(env=StoreSettings(url).eventsourcing_env(cls.name))

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    def load(self, cls: type[A], aggregate_id: UUID, what: str, version: int | None = None) -> A:
        try:
            aggregate: CarepathAggregate = self.repository.get(aggregate_id, version=version)
        except AggregateNotFoundError as exc:
            raise NotFound(f"{what} not found") from exc
        if not isinstance(aggregate, cls):
            raise NotFound(f"{what} not found")
        return aggregate

    def first_result(self, cls: type[A], aggregate_id: UUID, command_id: str, what: str) -> A:
        """The aggregate as it stood right after the event `command_id` recorded."""
        for stored in self.repository.event_store.get(aggregate_id):
            meta: dict[str, Any] = stored.meta  # type: ignore[attr-defined]
            if meta.get("command_id") == command_id:
                return self.load(cls, aggregate_id, what, version=stored.originator_version)
        return self.load(cls, aggregate_id, what)

    def create_once(
        self,
        cls: type[A],
        aggregate_id: UUID,
        command_id: str,
        what: str,
        create: Callable[[], A],
    ) -> A:
        """Create an aggregate whose id derives from the command; a retry returns the first."""
        try:
            self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            aggregate = create()
            try:
                self.save(aggregate)
            except IntegrityError:  # the same command raced with itself
                pass
            else:
                return aggregate
        return self.first_result(cls, aggregate_id, command_id, what)

    def change(
        self,
        cls: type[A],
        aggregate_id: UUID,
        command_id: str,
        what: str,
        change: Callable[[A], None],
    ) -> A:
        """Load → change → save, answering a repeated command with its first result and
        re-running the rules when a concurrent change got there first."""
        for _ in range(CONFLICT_RETRIES):
            aggregate = self.load(cls, aggregate_id, what)
            if aggregate.has_handled(command_id):
                return self.first_result(cls, aggregate_id, command_id, what)
            change(aggregate)
            try:
                self.save(aggregate)
            except IntegrityError:
                continue
            return aggregate
        raise Conflict(f"{what} changed concurrently; retry the command")
