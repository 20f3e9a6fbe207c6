"""How every carepath process is told to stop: SIGTERM (honcho, Docker, Kubernetes) or SIGINT
(Ctrl-C) sets one event, which the process's loop or its wait watches, so it can finish what it
holds (a relay its batch, a gRPC server its running calls) before it exits."""

from __future__ import annotations

import signal
import threading


def stop_event() -> threading.Event:
    """An event set by SIGTERM or SIGINT (call it from the main thread)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop
