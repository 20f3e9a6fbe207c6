"""The asynchronous gRPC server (grpc.aio), for calls that stay open: a vendor's event stream
is a server stream held for hours, and thousands of them must not need thousands of threads.

The same admission as every other call (shared/grpc_server.py, `CarepathInterceptor`): the
bearer token names the caller, the request is held to its bounds, the access table and the
policy decide, the call is put on the audit log with its outcome, and what the handler raises
is mapped to its status in the one place (`grpc_server.failure`). The admission's database
work (facts, audit log, token revocations) is blocking, so it runs on a worker thread; the
call itself runs on the event loop. Health checking and reflection as on the threaded servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from shared.access import enforce
from shared.access.enforce import AccessControl, Call, Refused
from shared.auth import TokenVerifier
from shared.config import ServerTLS
from shared.grpc_server import (
    PUBLIC_PREFIXES,
    CarepathInterceptor,
    Failure,
    failure,
    server_credentials,
)

log = logging.getLogger(__name__)

#: A call's own check after the policy admitted it (e.g. the subscription is the caller's),
#: on the admission's thread: raises `Refused` (audited as PERMISSION_DENIED) or a domain
#: error / `Failure` (audited with its status).
Check = Callable[[Call, Any], None]


class AioCarepathInterceptor(grpc.aio.ServerInterceptor):
    """`CarepathInterceptor` for the aio server: its admission and audit, awaited on a worker
    thread, then the method's own `Check` if it has one. Server-streaming calls only (the one
    kind served here)."""

    def __init__(
        self,
        tokens: TokenVerifier,
        access: AccessControl,
        checks: Mapping[str, Check] | None = None,
    ) -> None:
        self._sync = CarepathInterceptor(tokens, access)
        self._checks = dict(checks or {})

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(PUBLIC_PREFIXES):
            return handler
        if not handler.unary_stream:
            raise RuntimeError(f"{method}: only server-streaming calls are served by grpc.aio")
        # An aio handler is an async generator; the stubs type it as the threaded one.
        behavior = cast(Callable[..., AsyncIterator[Any]], handler.unary_stream)
        admit, record = self._sync.admit, self._sync.record
        check = self._checks.get(method)

        def admitted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Call:
            # The aio context answers invocation_metadata() as the threaded one does.
            call = admit(method, request, cast(grpc.ServicerContext, context))
            if check is not None:
                try:
                    check(call, request)
                except Refused as refused:
                    record(refused.call, grpc.StatusCode.PERMISSION_DENIED.name)
                    raise failure(method, refused) from None
                except Exception as exc:
                    failed = failure(method, exc)
                    record(call, failed.code.name)
                    raise failed from exc
            return call

        async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                call = await asyncio.to_thread(admitted, request, context)
            except Failure as failed:
                await context.abort_with_status(failed.status())
                return
            token = enforce.enter(call)
            try:
                await asyncio.to_thread(record, call, grpc.StatusCode.OK.name)  # opened
                async for reply in behavior(request, context):
                    yield reply
            except asyncio.CancelledError:
                raise  # the caller went away (or the server stops): nothing to answer
            except Exception as exc:
                mapped = failure(method, exc)
                with contextlib.suppress(Failure):
                    await asyncio.to_thread(record, call, mapped.code.name)
                await context.abort_with_status(mapped.status())
            finally:
                with contextlib.suppress(ValueError):  # closed in another context
                    enforce.leave(token)

        return grpc.unary_stream_rpc_method_handler(
            streaming, handler.request_deserializer, handler.response_serializer
        )


class AioServer:
    """A started grpc.aio server with its health servicer."""

    def __init__(
        self,
        server: grpc.aio.Server,
        health_servicer: health_aio.HealthServicer,
        port: int,
        service_names: Sequence[str],
    ) -> None:
        self.grpc_server = server
        self.health = health_servicer
        self.port = port
        self.service_names = tuple(service_names)
        self._loop = asyncio.get_running_loop()

    async def _set(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in (*self.service_names, ""):
            await self.health.set(name, status)

    def set_serving(self, serving: bool) -> None:
        """As `Server.set_serving`; callable from any thread (shared.ops follows the
        dependencies on one of its own)."""
        asyncio.run_coroutine_threadsafe(self._set(serving), self._loop)

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, let open calls end (up to `grace`), then stop."""
        await self.health.enter_graceful_shutdown()
        await self.grpc_server.stop(grace)


async def start_aio_server(
    address: str,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    tokens: TokenVerifier,
    access: AccessControl,
    tls: ServerTLS | None = None,
    maximum_concurrent_rpcs: int | None = None,
    checks: Mapping[str, Check] | None = None,
) -> AioServer:
    """Build, register and start an aio server on `address` (port 0 picks a free one), every
    call admitted as `shared.grpc_server.start_server`'s are; at most
    `maximum_concurrent_rpcs` open calls (more are answered RESOURCE_EXHAUSTED)."""
    server = grpc.aio.server(
        interceptors=[AioCarepathInterceptor(tokens, access, checks)],
        options=[("grpc.so_reuseport", 0)],
        maximum_concurrent_rpcs=maximum_concurrent_rpcs,
    )
    register(server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in (*service_names, ""):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, server_credentials(tls))
    if port == 0:
        raise RuntimeError(f"cannot listen on {address}")
    await server.start()
    return AioServer(server, health_servicer, port, service_names)
