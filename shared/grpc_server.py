"""gRPC server bootstrap shared by every service: health checking, server reflection, one
interceptor for caller identity, the access policy, the audit log and error mapping, and
graceful shutdown.

Every call of every service goes through `CarepathInterceptor`: the bearer token names the
caller; the request is held to its bounds (shared/limits.py: text lengths, list sizes, times);
the access table (shared/access/table.py) and the policy decide the call (default
deny); the call is put on the audit log with its outcome — allowed or refused, OK or not —
before its answer leaves. Calls without a valid token are answered UNAUTHENTICATED and not
recorded (they name no one).

gRPC servers are plain processes with threads — never inside nameko/eventlet (it hangs).
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from typing import Any, NoReturn

import grpc
import psycopg
import sqlalchemy as sa
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from shared import config, errors, limits
from shared.access import enforce
from shared.access.enforce import AccessControl, Call, Refused
from shared.access.table import rule_for
from shared.auth import Actor, IssuerUnavailable, TokenVerifier, Unauthenticated
from shared.config import ServerTLS

log = logging.getLogger(__name__)

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
    return enforce.current_call().actor


def status_for(exc: errors.DomainError) -> grpc.StatusCode:
    for cls, code in _STATUS_OF:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.FAILED_PRECONDITION


class _Failed(Exception):
    """A call's failure, already mapped to its status and safe message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _failure(method: str, exc: Exception) -> _Failed:
    if isinstance(exc, _Failed):
        return exc
    if isinstance(exc, errors.DomainError):
        return _Failed(status_for(exc), str(exc))
    if isinstance(
        exc, sa.exc.OperationalError | sqlite3.OperationalError | psycopg.OperationalError
    ):
        # A database the call needs is down or locked (also met straight on the driver, by the
        # policy's facts and the audit log): try again later.
        log.warning("%s: database unavailable (%s)", method, type(exc).__name__)
        return _Failed(grpc.StatusCode.UNAVAILABLE, "a database is unavailable; retry")
    # Unexpected: the traceback may hold request values (personal data), so only DEBUG.
    log.error("%s failed: %s", method, type(exc).__name__)
    log.debug("%s failed", method, exc_info=exc)
    return _Failed(grpc.StatusCode.INTERNAL, "internal error")


class CarepathInterceptor(grpc.ServerInterceptor):
    """Authenticates the bearer token, admits the call by the access policy, exposes it as
    `enforce.current_call()` (and the caller as `current_actor()`), records it in the audit
    log, and maps domain errors to status codes with their field-level messages."""

    def __init__(self, tokens: TokenVerifier, access: AccessControl) -> None:
        self._verify = tokens
        self._access = access

    def _authenticate(self, context: grpc.ServicerContext) -> Actor:
        metadata = dict(context.invocation_metadata())
        header = metadata.get("authorization", "")
        if not isinstance(header, str) or not header.lower().startswith("bearer "):
            raise Unauthenticated("missing bearer token in 'authorization' metadata")
        return self._verify(header[7:].strip())

    def _record(self, call: Call, outcome: str) -> None:
        try:
            self._access.record(call, outcome)
        except Exception as exc:
            log.error("%s: audit log unavailable (%s)", call.rule_name, type(exc).__name__)
            raise _Failed(
                grpc.StatusCode.UNAVAILABLE, "the access could not be put on record; retry"
            ) from exc

    def _admit(self, method: str, request: Any, context: grpc.ServicerContext) -> Call:
        """Authenticate and decide; a refusal is recorded and raised as `_Failed`."""
        try:
            actor = self._authenticate(context)
        except Unauthenticated as exc:
            raise _Failed(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from exc
        except IssuerUnavailable as exc:
            log.warning("%s: token not checked (%s)", method, exc)
            raise _Failed(
                grpc.StatusCode.UNAVAILABLE, "tokens cannot be checked now; retry"
            ) from exc
        metadata = dict(context.invocation_metadata())
        rule = rule_for(method)
        name = method.rsplit(".", 1)[-1]
        if rule is None:
            call = self._access.refused(name, actor, metadata, "no access rule for this call")
            self._record(call, grpc.StatusCode.PERMISSION_DENIED.name)
            raise _Failed(grpc.StatusCode.PERMISSION_DENIED, enforce.REFUSAL)
        try:
            limits.check(request)  # bounds before anything reads the request
            return self._access.admit(rule, actor, request, metadata)
        except Refused as refused:
            log.debug("%s refused: %s", name, refused.call.decision.reason)
            self._record(refused.call, grpc.StatusCode.PERMISSION_DENIED.name)
            raise _Failed(grpc.StatusCode.PERMISSION_DENIED, enforce.REFUSAL) from None
        except Exception as exc:
            failed = _failure(method, exc)
            call = self._access.refused(name, actor, metadata, str(failed))
            self._record(call, failed.code.name)
            raise failed from exc

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(PUBLIC_PREFIXES):
            return handler

        def abort(context: grpc.ServicerContext, failed: _Failed) -> NoReturn:
            context.abort(failed.code, failed.message)
            raise AssertionError("unreachable")  # context.abort raises

        def unary(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
                try:
                    call = self._admit(method, request, context)
                except _Failed as failed:
                    abort(context, failed)
                token = enforce.enter(call)
                try:
                    try:
                        reply = behavior(request, context)
                    except Exception as exc:
                        failure = _failure(method, exc)
                        self._record(call, failure.code.name)
                        raise failure from exc
                    self._record(call, grpc.StatusCode.OK.name)
                    return reply
                except _Failed as failed:
                    abort(context, failed)
                finally:
                    enforce.leave(token)

            return wrapped

        def streaming(behavior: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                try:
                    call = self._admit(method, request, context)
                except _Failed as failed:
                    abort(context, failed)
                token = enforce.enter(call)
                try:
                    try:
                        self._record(call, grpc.StatusCode.OK.name)  # the stream is opened
                        yield from behavior(request, context)
                    except _Failed:
                        raise
                    except Exception as exc:
                        failure = _failure(method, exc)
                        self._record(call, failure.code.name)
                        raise failure from exc
                except _Failed as failed:
                    abort(context, failed)
                finally:
                    enforce.leave(token)

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
        # Every carepath call has one request (a rule's target is read from it).
        raise RuntimeError(f"{method}: client-streaming calls are not supported")


def server_credentials(tls: ServerTLS) -> grpc.ServerCredentials:
    client_ca = tls.client_ca.read_bytes() if tls.client_ca else None
    return grpc.ssl_server_credentials(
        [(tls.key.read_bytes(), tls.cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
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
        """Block until SIGTERM/SIGINT, then shut down gracefully: running calls get
        `GRPC_GRACE_SECONDS` (read now, so a bad setting fails the start, not the stop)."""
        grace = config.grpc_grace_seconds()
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        log.info("shutting down")
        self.stop(grace)


def start_server(
    address: str,
    register: Callable[[grpc.Server], None],
    service_names: Sequence[str],
    tokens: TokenVerifier,
    access: AccessControl,
    max_workers: int = 32,
    tls: ServerTLS | None = None,
) -> Server:
    """Build, register and start a server on `address` ("host:port"; port 0 picks a free one),
    every call authenticated by `tokens` (`TokenVerifier.from_config()`) and passing `access`
    (the policy and the audit log). With `tls` (from `config.grpc_server_tls()`) it serves TLS
    only, and requires a client certificate signed by `tls.client_ca` when that is set (mTLS);
    without, plaintext (`make run` on loopback)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        interceptors=[CarepathInterceptor(tokens, access)],
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
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, server_credentials(tls))
    if port == 0:
        raise RuntimeError(f"cannot listen on {address}")
    server.start()
    return Server(server, health_servicer, port)
