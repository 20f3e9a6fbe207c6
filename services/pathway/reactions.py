"""nameko reactions of the pathway: a timer that announces deadline breaches.

Runs as its own process (never beside a gRPC server):

    nameko run --config infra/nameko.yml services.pathway.reactions

DeadlineBreached is dispatched to the `pathway.events` exchange (nameko's convention,
routing key = event type) with the public envelope as body.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from typing import Any

from nameko.events import EventDispatcher
from nameko.extensions import DependencyProvider
from nameko.timer import timer
from sqlalchemy.engine import Engine

from services.pathway import deadlines, migrate, readmodel
from shared import config

log = logging.getLogger(__name__)

#: Seconds between looks for new breaches.
INTERVAL = float(os.environ.get("PATHWAY_DEADLINE_INTERVAL", "30"))


class ReadModel(DependencyProvider):  # type: ignore[misc]
    """The pathway read model's engine (one per container)."""

    def setup(self) -> None:
        self.engine = readmodel.create_engine(config.database_url("pathway"))
        migrate.upgrade(self.engine)

    def stop(self) -> None:
        self.engine.dispose()

    def get_dependency(self, worker_ctx: Any) -> Engine:
        return self.engine


class DeadlineWatch:
    name = "pathway"

    read_model = ReadModel()
    dispatch = EventDispatcher()

    @timer(interval=INTERVAL)  # type: ignore[untyped-decorator]
    def announce_breaches(self) -> None:
        count = deadlines.announce_breaches(
            self.read_model, lambda envelope: self.dispatch(envelope.event_type, asdict(envelope))
        )
        if count:
            log.info("announced %d deadline breaches", count)
