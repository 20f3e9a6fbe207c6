"""nameko reactions of the pathway: a timer that announces deadline breaches.

Runs as its own process (never beside a gRPC server):

    python -m shared.run_reactions services.pathway.reactions

DeadlineBreached goes to the `pathway.events` exchange (routing key = event type), published as
the pathway's broker user, with the public envelope as body and the usual message properties
(`user_id` included), by the same batched publisher as the relays: one confirm per tick, not
one per breach. It is an announcement to whoever listens now, so it is not held back while no
queue is bound.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from nameko.extensions import DependencyProvider
from nameko.timer import timer
from sqlalchemy.engine import Engine

from services.pathway import deadlines, migrate, readmodel
from shared import config
from shared.amqp import BatchPublisher, PublishError
from shared.events import Envelope
from shared.retry import until_available

log = logging.getLogger(__name__)

#: Seconds between looks for new breaches.
INTERVAL = float(os.environ.get("PATHWAY_DEADLINE_INTERVAL", "30"))


class ReadModel(DependencyProvider):  # type: ignore[misc]
    """The pathway read model's engine (one per container)."""

    def setup(self) -> None:
        self.engine = readmodel.create_engine(config.database_url("pathway"), "reactions")
        until_available(lambda: migrate.upgrade(self.engine), log, "read model")

    def stop(self) -> None:
        self.engine.dispose()

    def get_dependency(self, worker_ctx: Any) -> Engine:
        return self.engine


class Announcements(DependencyProvider):  # type: ignore[misc]
    """Publishes a batch of envelopes to `pathway.events` (one connection per container)."""

    def setup(self) -> None:
        self.publisher = BatchPublisher(config.amqp_uri("pathway"), "pathway", mandatory=False)

    def stop(self) -> None:
        self.publisher.close()

    def get_dependency(self, worker_ctx: Any) -> Callable[[list[Envelope]], None]:
        return self.publisher.publish


class DeadlineWatch:
    name = "pathway"

    read_model = ReadModel()
    publish = Announcements()

    @timer(interval=INTERVAL)  # type: ignore[untyped-decorator]
    def announce_breaches(self) -> None:
        try:
            count = deadlines.announce_breaches(self.read_model, self.publish)
        except PublishError as exc:  # nothing recorded: the next tick announces them again
            log.warning("deadline breaches not announced: %s", exc)
            return
        if count:
            log.info("announced %d deadline breaches", count)
