"""The whole path on real parts for end-to-end stories: every domain service's gRPC server and
outbox relay, the projector and PathwayService, on each backend (see tests/support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.broker import Tenant
from tests.support import Harness, drain_queue, projector_queue, running_system


@pytest.fixture
def system(backend: dict[str, str], broker: Tenant, amqp_uri: str) -> Iterator[Harness]:
    queue = projector_queue("e2e")
    with running_system(backend, broker, queue) as harness:
        yield harness
    drain_queue(amqp_uri, queue)
