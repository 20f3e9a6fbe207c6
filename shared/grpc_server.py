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
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from typing import Any, NoReturn

import eventsourcing.persistence as es
import grpc
import sqlalchemy as sa
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from shared import config, errors, limits, ops, per_call, tracing
from shared.access import enforce
from shared.access.enforce import AccessControl, Call, Refused
from shared.access.table import rule_for
from shared.actors import Actor
from shared.auth import IssuerUnavailable, TokenVerifier, Unauthenticated
from shared.config import ServerTLS
from shared.retry import UNAVAILABLE
from shared.signals import stop_event

log = logging.getLogger(__name__)

#: Methods anyone may call without a token (orchestrators probe health; tools use reflection).
PUBLIC_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

#: Worker threads of a server (one call each) unless its api module asks for more
#: (`MAX_WORKERS`: PathwayService's long-lived WatchPathway streams hold one each).
DEFAULT_MAX_WORKERS = 32

#: The domain of every google.rpc.ErrorInfo a carepath service sends.
ERROR_DOMAIN = "carepath.no"

#: The other domain errors → status code and ErrorInfo reason (InvalidArgument and
#: InvalidTransition carry more detail: see `failure`).
_DOMAIN_ERRORS: list[tuple[type[errors.DomainError], grpc.StatusCode, str]] = [
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS, "ALREADY_EXISTS"),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
    (errors.NotPermitted, grpc.StatusCode.PERMISSION_DENIED, "NO_ACCESS"),
    (errors.Conflict, grpc.StatusCode.ABORTED, "CONFLICT"),
    (errors.NotYetKnown, grpc.StatusCode.UNAVAILABLE, "NOT_YET_KNOWN"),
]


def current_actor() -> Actor:
    """The authenticated caller of the RPC being handled."""
    return enforce.current_call().actor


class Failure(Exception):
    """A call's failure as the caller gets it: status code, a human-readable message (safe to
    return: no personal data, no internals), and the google.rpc details — a BadRequest field
    violation for a field error, an ErrorInfo (reason, ERROR_DOMAIN, metadata) always."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str,
        violation: errors.InvalidArgument | None = None,
        **metadata: str,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.reason = code, message, reason
        self.violation, self.metadata = violation, metadata

    def status(self) -> grpc.Status:
        """The rich status (grpc-status-details-bin) for `context.abort_with_status`."""
        details: list[Message] = []
        if self.violation is not None:
            violation = error_details_pb2.BadRequest.FieldViolation(
                field=self.violation.field, description=self.violation.reason
            )
            details.append(error_details_pb2.BadRequest(field_violations=[violation]))
        details.append(
            error_details_pb2.ErrorInfo(
                reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata
            )
        )
        packed = []
        for detail in details:
            any_ = any_pb2.Any()
            any_.Pack(detail)
            packed.append(any_)
        status: grpc.Status = rpc_status.to_status(
            status_pb2.Status(code=self.code.value[0], message=self.message, details=packed)
        )
        return status


def failure(method: str, exc: BaseException) -> Failure:
    """The one mapping of what a call raised to what its caller gets (docs/errors.md).

    Transient conditions are UNAVAILABLE (a store unreachable, locked or out of connections;
    the token issuer or the audit log unreachable; a fact not here yet) or ABORTED (a
    concurrent change won), and the clients' retry policy (shared.grpc_client) retries them
    with the same command id; FAILED_PRECONDITION is only for an impossible transition."""
    if isinstance(exc, Failure):
        return exc
    if isinstance(exc, Unauthenticated):
        return Failure(grpc.StatusCode.UNAUTHENTICATED, str(exc), "UNAUTHENTICATED")
    if isinstance(exc, IssuerUnavailable):
        log.warning("%s: token not checked (%s)", method, exc)
        return Failure(
            grpc.StatusCode.UNAVAILABLE, "tokens cannot be checked now; retry", "AUTH_UNAVAILABLE"
        )
    if isinstance(exc, Refused):
        # The same answer, word for word and detail for detail, whether or not the patient or
        # resource exists (shared/access/enforce.py).
        return Failure(grpc.StatusCode.PERMISSION_DENIED, enforce.REFUSAL, "NO_ACCESS")
    if isinstance(exc, errors.InvalidArgument):
        return Failure(
            grpc.StatusCode.INVALID_ARGUMENT, str(exc), "INVALID_ARGUMENT", exc, field=exc.field
        )
    if isinstance(exc, errors.AlreadyExists) and exc.field:
        return Failure(grpc.StatusCode.ALREADY_EXISTS, str(exc), "ALREADY_EXISTS", field=exc.field)
    if isinstance(exc, errors.InvalidTransition):
        return Failure(
            grpc.StatusCode.FAILED_PRECONDITION,
            str(exc),
            "INVALID_TRANSITION",
            state=exc.current_state,
        )
    if isinstance(exc, errors.DomainError):
        for cls, code, reason in _DOMAIN_ERRORS:
            if isinstance(exc, cls):
                return Failure(code, str(exc), reason)
        return Failure(grpc.StatusCode.FAILED_PRECONDITION, str(exc), "FAILED_PRECONDITION")
    if isinstance(exc, es.IntegrityError):
        # A version conflict the application did not retry itself.
        log.warning("%s: concurrent change (%s)", method, type(exc).__name__)
        return Failure(grpc.StatusCode.ABORTED, "the data changed concurrently; retry", "CONFLICT")
    if isinstance(exc, UNAVAILABLE) or (
        isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
    ):
        # Also met straight on the driver, by the policy's facts and the audit log. The
        # driver's text may name tables or values: only the type is logged.
        log.warning("%s: database unavailable (%s)", method, type(exc).__name__)
        return Failure(
            grpc.StatusCode.UNAVAILABLE, "a database is unavailable; retry", "STORE_UNAVAILABLE"
        )
    # Unexpected: the traceback may hold request values (personal data), so only DEBUG.
    log.error("%s failed: %s", method, type(exc).__name__)
    log.debug("%s failed", method, exc_info=exc)
    return Failure(grpc.StatusCode.INTERNAL, "internal error", "INTERNAL")


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

    def record(self, call: Call, outcome: str) -> None:
        try:
            self._access.record(call, outcome)
        except Exception as exc:
            log.error("%s: audit log unavailable (%s)", call.rule_name, type(exc).__name__)
            raise Failure(
                grpc.StatusCode.UNAVAILABLE,
                "the access could not be put on record; retry",
                "AUDIT_UNAVAILABLE",
            ) from exc

    def admit(self, method: str, request: Any, context: grpc.ServicerContext) -> Call:
        """Authenticate and decide; a refusal is recorded and raised as `Failure`."""
        try:
            actor = self._authenticate(context)
        except (Unauthenticated, IssuerUnavailable) as exc:
            raise failure(method, exc) from exc
        metadata = dict(context.invocation_metadata())
        rule = rule_for(method)
        name = method.rsplit(".", 1)[-1]
        if rule is None:
            call = self._access.refused(name, actor, metadata, "no access rule for this call")
            self.record(call, grpc.StatusCode.PERMISSION_DENIED.name)
            raise Failure(grpc.StatusCode.PERMISSION_DENIED, enforce.REFUSAL, "NO_ACCESS")
        try:
            limits.check(request)  # bounds before anything reads the request
            return self._access.admit(rule, actor, request, metadata)
        except Refused as refused:
            log.debug("%s refused: %s", name, refused.call.decision.reason)
            self.record(refused.call, grpc.StatusCode.PERMISSION_DENIED.name)
            raise failure(method, refused) from None
        except Exception as exc:
            failed = failure(method, exc)
            call = self._access.refused(name, actor, metadata, str(failed))
            self.record(call, failed.code.name)
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

        def abort(context: grpc.ServicerContext, failed: Failure) -> NoReturn:
            context.abort_with_status(failed.status())
            raise AssertionError("unreachable")  # context.abort_with_status raises

        def unary(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
                with per_call.scope():  # the resolver and the servicer read a row once
                    return admitted(request, context)

            def admitted(request: Any, context: grpc.ServicerContext) -> Any:
                try:
                    call = self.admit(method, request, context)
                except Failure as failed:
                    abort(context, failed)
                token = enforce.enter(call)
                try:
                    try:
                        reply = behavior(request, context)
                    except Exception as exc:
                        mapped = failure(method, exc)
                        self.record(call, mapped.code.name)
                        raise mapped from exc
                    self.record(call, grpc.StatusCode.OK.name)
                    return reply
                except Failure as failed:
                    abort(context, failed)
                finally:
                    enforce.leave(token)

            return wrapped

        def streaming(behavior: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                try:
                    call = self.admit(method, request, context)
                except Failure as failed:
                    abort(context, failed)
                token = enforce.enter(call)
                try:
                    try:
                        self.record(call, grpc.StatusCode.OK.name)  # the stream is opened
                        yield from behavior(request, context)
                    except Failure:
                        raise
                    except Exception as exc:
                        mapped = failure(method, exc)
                        self.record(call, mapped.code.name)
                        raise mapped from exc
                except Failure as failed:
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


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts and times every call (health and reflection aside) by service, method and the
    status it ended with: `carepath_rpc_duration_seconds` (shared/ops.py). Outermost, so it
    sees the status the other interceptors mapped."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(PUBLIC_PREFIXES):
            return handler
        service, _, name = method.lstrip("/").partition("/")

        def observe(context: grpc.ServicerContext, started: float, failed: bool) -> None:
            code = context.code()  # type: ignore[attr-defined]
            status = code.name if code is not None else ("UNKNOWN" if failed else "OK")
            ops.RPC_DURATION.labels(service, name, status).observe(time.perf_counter() - started)

        if handler.unary_unary:
            behavior = handler.unary_unary

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                started, failed = time.perf_counter(), True
                try:
                    reply = behavior(request, context)
                    failed = False
                    return reply
                finally:
                    observe(context, started, failed)

            return grpc.unary_unary_rpc_method_handler(
                unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            stream = handler.unary_stream

            def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                started, failed = time.perf_counter(), True
                try:
                    yield from stream(request, context)
                    failed = False
                finally:
                    observe(context, started, failed)

            return grpc.unary_stream_rpc_method_handler(
                streaming, handler.request_deserializer, handler.response_serializer
            )
        return handler


def server_credentials(tls: ServerTLS) -> grpc.ServerCredentials:
    client_ca = tls.client_ca.read_bytes() if tls.client_ca else None
    return grpc.ssl_server_credentials(
        [(tls.key.read_bytes(), tls.cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


class Server:
    """A started gRPC server with its health servicer."""

    def __init__(
        self,
        server: grpc.Server,
        health_servicer: health.HealthServicer,
        port: int,
        service_names: Sequence[str] = (),
    ):
        self.grpc_server = server
        self.health = health_servicer
        self.port = port
        self.service_names = tuple(service_names)

    def set_serving(self, serving: bool) -> None:
        """Health of every service of the server (and the server's own, ""): SERVING or
        NOT_SERVING (shared.ops follows the store and the other dependencies with it)."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in (*self.service_names, ""):
            self.health.set(name, status)

    def stop(self, grace: float = 10.0) -> None:
        """Report NOT_SERVING, let running calls finish (up to `grace`), then stop."""
        self.health.enter_graceful_shutdown()
        self.grpc_server.stop(grace).wait()

    def wait_for_signal(self) -> None:
        """Block until SIGTERM/SIGINT, then shut down gracefully: running calls get
        `GRPC_GRACE_SECONDS` (read now, so a bad setting fails the start, not the stop)."""
        grace = config.grpc_grace_seconds()
        stop_event().wait()
        log.info("shutting down")
        self.stop(grace)


def start_server(
    address: str,
    register: Callable[[grpc.Server], None],
    service_names: Sequence[str],
    tokens: TokenVerifier,
    access: AccessControl,
    max_workers: int = DEFAULT_MAX_WORKERS,
    tls: ServerTLS | None = None,
) -> Server:
    """Build, register and start a server on `address` ("host:port"; port 0 picks a free one),
    every call authenticated by `tokens` (`TokenVerifier.from_config()`) and passing `access`
    (the policy and the audit log). With `tls` (from `config.grpc_server_tls()`) it serves TLS
    only, and requires a client certificate signed by `tls.client_ca` when that is set (mTLS);
    without, plaintext (`make run` on loopback)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        # Metrics outermost (they see the status the others mapped), then the trace's span,
        # so the policy's and the call's logs carry its ids.
        interceptors=[
            MetricsInterceptor(),
            tracing.ServerInterceptor(),
            CarepathInterceptor(tokens, access),
        ],
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
    return Server(server, health_servicer, port, service_names)
