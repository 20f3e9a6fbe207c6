"""gRPC server bootstrap shared by every service: health checking, server reflection, one
interceptor for caller identity and error mapping, and graceful shutdown.

gRPC servers are plain processes with threads — never inside nameko/eventlet (it hangs).
"""

from __future__ import annotations

import contextvars
import logging
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from shared import errors
from shared.auth import Actor, Unauthenticated, verify_token

log = logging.getLogger(__name__)

_current_actor: contextvars.ContextVar[Actor] = contextvars.ContextVar("carepath_actor")

#: Methods anyone may call without a token (orchestrators probe health; tools use reflection).
PUBLIC_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

_STATUS_OF: list[tuple[type[Exception], grpc.StatusCode]] = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InvalidTransition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.NotPermitted, grpc.StatusCode.PERMISSION_DENIED),
]


def current_actor() -> Actor:
    """The authenticated caller of the RPC being handled."""
    return _current_actor.get()


def status_for(exc: errors.DomainError) -> grpc.StatusCode:
    for cls, code in _STATUS_OF:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.FAILED_PRECONDITION


class CarepathInterceptor(grpc.ServerInterceptor):
    """Authenticates the bearer token, exposes the caller as `current_actor()`, and maps
    domain errors to status codes with their field-level messages."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def _authenticate(self, context: grpc.ServicerContext) -> Actor:
        metadata = dict(context.invocation_metadata())
        header = metadata.get("authorization", "")
        if not isinstance(header, str) or not header.lower().startswith("bearer "):
            raise Unauthenticated("missing bearer token in 'authorization' metadata")
        return verify_token(header[7:].strip(), self._secret)

    def _guard(self, method: str, context: grpc.ServicerContext) -> contextvars.Token[Actor]:
        try:
            actor = self._authenticate(context)
        except Unauthenticated as exc:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        return _current_actor.set(actor)

    def _fail(self, method: str, exc: Exception, context: grpc.ServicerContext) -> None:
        if isinstance(exc, errors.DomainError):
            context.abort(status_for(exc), str(exc))
        # Unexpected: the traceback may hold request values (personal data), so only DEBUG.
        log.error("%s failed: %s", method, type(exc).__name__)
        log.debug("%s failed", method, exc_info=exc)
        context.abort(grpc.StatusCode.INTERNAL, "internal error")

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(PUBLIC_PREFIXES):
            return handler

        def unary(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
                token = self._guard(method, context)
                try:
                    return behavior(request, context)
                except grpc.RpcError:
                    raise
                except Exception as exc:
                    self._fail(method, exc, context)
                finally:
                    _current_actor.reset(token)

            return wrapped

        def streaming(behavior: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                token = self._guard(method, context)
                try:
                    yield from behavior(request, context)
                except grpc.RpcError:
                    raise
                except Exception as exc:
                    self._fail(method, exc, context)
                finally:
                    _current_actor.reset(token)

            return wrapped

        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                unary(handler.unary_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                streaming(handler.unary_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                unary(handler.stream_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        assert handler.stream_stream is not None
        return grpc.stream_stream_rpc_method_handler(
            streaming(handler.stream_stream),
            handler.request_deserializer,
            handler.response_serializer,
        )


class Server:
    """A started gRPC server with its health servicer."""

    def __init__(self, server: grpc.Server, health_servicer: health.HealthServicer, port: int):
        self.grpc_server = server
        self.health = health_servicer
        self.port = port

    def stop(self, grace: float = 10.0) -> None:
        """Report NOT_SERVING, let running calls finish (up to `grace`), then stop."""
        self.health.enter_graceful_shutdown()
        self.grpc_server.stop(grace).wait()

    def wait_for_signal(self) -> None:
        """Block until SIGTERM/SIGINT, then shut down gracefully."""
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        log.info("shutting down")
        self.stop()


def start_server(
    address: str,
    register: Callable[[grpc.Server], None],
    service_names: Sequence[str],
    secret: str,
    max_workers: int = 32,
) -> Server:
    """Build, register and start a server on `address` ("host:port"; port 0 picks a free one)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        interceptors=[CarepathInterceptor(secret)],
        options=[("grpc.so_reuseport", 0)],
    )
    register(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in service_names:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"cannot listen on {address}")
    server.start()
    return Server(server, health_servicer, port)
