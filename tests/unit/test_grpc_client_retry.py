"""The service config every carepath channel carries (shared.grpc_client): UNAVAILABLE and
ABORTED are retried with the same request, other codes are final — for the sync channels (demo,
bench, tests) and the asyncio ones (the viewer). A loopback server answers each attempt as told
and sees gRPC's own `grpc-previous-rpc-attempts` header on the retries."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from shared import grpc_client

METHOD = "/carepath.v1.Probe/Call"


class Scripted(grpc.GenericRpcHandler):
    """Answers the attempts of a call with `script`'s codes in turn, then OK (the request)."""

    def __init__(self) -> None:
        self.script: list[grpc.StatusCode] = []
        self.attempts: list[tuple[bytes, str | None]] = []

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler[Any, Any] | None:
        def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
            previous = dict(context.invocation_metadata()).get("grpc-previous-rpc-attempts")
            self.attempts.append((request, previous if isinstance(previous, str) else None))
            if self.script:
                context.abort(self.script.pop(0), "scripted")
            return request

        return grpc.unary_unary_rpc_method_handler(answer)


@pytest.fixture
def served() -> Iterator[tuple[str, Scripted]]:
    handler = Scripted()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers([handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", handler
    server.stop(0)


UNAVAILABLE, ABORTED = grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED


def test_unavailable_and_aborted_are_retried_with_the_same_request(
    served: tuple[str, Scripted],
) -> None:
    address, handler = served
    handler.script = [UNAVAILABLE, ABORTED, UNAVAILABLE]
    with grpc_client.channel(address) as channel:
        assert channel.unary_unary(METHOD)(b"command-7", timeout=30) == b"command-7"
    assert handler.attempts == [
        (b"command-7", None),
        (b"command-7", "1"),
        (b"command-7", "2"),
        (b"command-7", "3"),
    ]


def test_the_viewers_asyncio_channel_retries_the_same_way(served: tuple[str, Scripted]) -> None:
    address, handler = served
    handler.script = [ABORTED, UNAVAILABLE]

    async def call() -> bytes:
        async with grpc_client.aio_channel(address) as channel:
            reply: bytes = await channel.unary_unary(METHOD)(b"read", timeout=30)
            return reply

    assert asyncio.run(call()) == b"read"
    assert len(handler.attempts) == 3


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INTERNAL,
    ],
)
def test_final_codes_are_not_retried(served: tuple[str, Scripted], code: grpc.StatusCode) -> None:
    address, handler = served
    handler.script = [code]
    with grpc_client.channel(address) as channel, pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary(METHOD)(b"x", timeout=30)
    assert caught.value.code() == code
    assert len(handler.attempts) == 1


def test_after_five_attempts_the_caller_gets_the_status(served: tuple[str, Scripted]) -> None:
    address, handler = served
    handler.script = [UNAVAILABLE] * 6
    with grpc_client.channel(address) as channel, pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary(METHOD)(b"x", timeout=30)
    assert caught.value.code() == UNAVAILABLE
    assert len(handler.attempts) == 5
