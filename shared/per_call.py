"""Reads shared within one gRPC call: the access policy's resolver and the servicer of the same
call read the same row once, not once each (`DeclareReadyForDischarge` read the known stay in
the resolver and again in the command). The shared interceptor (shared/grpc_server.py) opens a
scope around each call (`scope`); outside one (reactions, tools, tests calling an application
directly) `read_once` reads every time.

Within a call the servicer then acts on the reading the policy decided on, never a newer one
taken a moment later."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

_reads: ContextVar[dict[Hashable, Any] | None] = ContextVar("carepath_call_reads", default=None)


@contextmanager
def scope() -> Iterator[None]:
    """One call's reads: `read_once` inside it reads each key once."""
    token = _reads.set({})
    try:
        yield
    finally:
        _reads.reset(token)


def read_once(key: Hashable, read: Callable[[], T]) -> T:
    """What `read()` returns, read once per call scope for `key` (every time outside one)."""
    reads = _reads.get()
    if reads is None:
        return read()
    if key not in reads:
        reads[key] = read()
    result: T = reads[key]
    return result
