"""The short fault run (`make chaos`'s plan "short", bench/chaos.py) in the suite: the whole
system as real processes on a RabbitMQ node and a PostgreSQL cluster of its own
(tests/throwaway.py; the machine's are not touched), a few hundred paced commands, one broker
restart and one kill -9 of the projector. Nothing answered OK may be lost or doubled, and a
rebuild equals the live read model. Fails (never skips) without rabbitmq-server or
PostgreSQL's server binaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import chaos


@pytest.mark.broker
@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_a_broker_restart_and_a_killed_projector_lose_nothing(tmp_path: Path) -> None:
    plan = chaos.PLANS["short"]
    result = chaos.run(plan, clients=4, settle_for=180, workdir=tmp_path)
    print(chaos.report("short", plan, result))
    assert [f for f in result.faults if "not done" in f] == []
    assert len(result.faults) == 2
    assert result.failures == []
    rows = dict(result.rows)
    assert int(rows["commands OK"]) > 0
    for measure in ("OK and stored", "OK and published", "OK and projected"):
        assert rows[measure] == rows["commands OK"], measure
