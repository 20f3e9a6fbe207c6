"""The one back-off every process retries with, and what an operator reads per attempt."""

from __future__ import annotations

import logging
import threading

import pytest
import sqlalchemy as sa

from services.pathway.projector import Projector
from shared.retry import Backoff, until_available
from tests.support import free_port, wait_for


def test_delays_double_from_the_first_and_never_pass_the_cap() -> None:
    low = Backoff(first=0.2, cap=5.0, jitter=lambda: 0.0)
    high = Backoff(first=0.2, cap=5.0, jitter=lambda: 1.0)
    lows = [low.next_delay() for _ in range(8)]
    highs = [high.next_delay() for _ in range(8)]
    assert highs == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0])
    assert lows == pytest.approx([h / 2 for h in highs])  # jitter spreads over [d/2, d]


def test_a_success_starts_the_delays_again() -> None:
    backoff = Backoff(first=0.2, jitter=lambda: 1.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.2)
    assert backoff.attempt == 1


def test_each_failed_attempt_is_one_warning_line_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise sa.exc.OperationalError("SELECT secret FROM patients", {"fnr": "x"}, OSError())
        return "up"

    log = logging.getLogger("test.retry")
    with caplog.at_level(logging.WARNING):
        result = until_available(flaky, log, "store", backoff=Backoff(first=0.001, cap=0.002))
    assert result == "up"
    lines = [r for r in caplog.records if r.name == "test.retry"]
    assert [r.levelno for r in lines] == [logging.WARNING, logging.WARNING]
    assert "(attempt 1)" in lines[0].getMessage() and "(attempt 2)" in lines[1].getMessage()
    assert all(r.exc_info is None for r in lines)
    assert not any("secret" in r.getMessage() or "fnr" in r.getMessage() for r in lines)


def test_an_unreachable_broker_is_one_line_of_ours_per_attempt_and_none_of_pikas(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """pika alone writes about seven ERROR lines and a traceback per attempt."""
    logging.getLogger("pika").setLevel(logging.WARNING)  # as every process's logging setup
    nobody = f"amqp://user:password@127.0.0.1:{free_port()}/%2F"
    projector = Projector(sa.create_engine("sqlite://"), nobody)
    stop = threading.Event()
    with caplog.at_level(logging.DEBUG):
        thread = threading.Thread(target=projector.run, args=(stop,), daemon=True)
        thread.start()
        wait_for(
            lambda: sum("broker unavailable" in r.getMessage() for r in caplog.records) >= 3,
            what="three attempts",
        )
        stop.set()
        thread.join(timeout=10)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings and all(r.name == "services.pathway.projector" for r in warnings)
    assert all(r.exc_info is None and "next try in" in r.getMessage() for r in warnings)
    assert [f"(attempt {n})" in r.getMessage() for n, r in enumerate(warnings, 1)] == [True] * len(
        warnings
    )
    assert not any(
        r.name.startswith("pika") and r.levelno >= logging.WARNING for r in caplog.records
    )
