"""The whole path on real parts for end-to-end stories: every domain service's gRPC server and
outbox relay, the projector and PathwayService, on each backend (see tests/support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import Harness, drain_queue, running_system, unique_queue


@pytest.fixture
def system(backend: dict[str, str], amqp_uri: str) -> Iterator[Harness]:
    queue = unique_queue("pathway.e2e")
    with running_system(backend, amqp_uri, queue) as harness:
        yield harness
    drain_queue(amqp_uri, queue)
