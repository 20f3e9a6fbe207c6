"""OpenTelemetry traces: one command's trace from its gRPC call to the read model and the
reactions, carried as a W3C trace context (`traceparent`) at every hop.

- gRPC: the client (`shared.grpc_client`) puts the caller's context in the call's metadata;
  `ServerInterceptor` (the first of every server, `shared.grpc_server.start_server`) opens one
  SERVER span per RPC from it.
- The store: the command's context (the RPC's span, or a reaction's) is stored with each event
  it records (`CommandContext.traceparent` → the event's metadata `traceparent`; not part of
  the published envelope's body).
- The relay: one PRODUCER span per published event, a child of the stored context; its
  context goes out in the message's AMQP header `traceparent`.
- The projector: one CONSUMER span per message, a child of the header's context, ended when
  the message is settled (projected and acked, or dead-lettered with its reason); one span per
  read-model transaction, linked to every message's span in it.
- Reactions: one CONSUMER span per message; the commands a reaction issues store its context.

Spans carry ids, names, counts and status codes, never request values (personal data).
Export: OTLP over gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the exporter reads the
standard `OTEL_EXPORTER_OTLP_*` settings), in batches from a background thread; otherwise the
spans still give the logs their ids and are dropped (no exporter, no thread).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar, Token
from typing import Any, NamedTuple

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

#: The W3C header (gRPC metadata key, AMQP header, event metadata key).
TRACEPARENT = "traceparent"
PROPAGATOR = TraceContextTextMapPropagator()
tracer = trace.get_tracer("carepath")

#: Calls not traced: health probes and reflection (an orchestrator's, every few seconds).
UNTRACED_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

#: Server status codes that make an RPC's span an error (the others are the caller's).
_SERVER_ERRORS = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
}


def setup(process: str) -> None:
    """The process's tracer provider (once): every span gets ids; with
    `OTEL_EXPORTER_OTLP_ENDPOINT` set they are exported over OTLP/gRPC in batches.
    `OTEL_SERVICE_NAME` overrides the service name (`process` by default)."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    name = os.environ.get("OTEL_SERVICE_NAME") or process
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def context_of(traceparent: str | None) -> otel_context.Context | None:
    """The context a W3C `traceparent` names (None for none; an invalid one is ignored)."""
    if not traceparent:
        return None
    return PROPAGATOR.extract({TRACEPARENT: traceparent})


def traceparent(span: Span | None = None) -> str:
    """The W3C `traceparent` of `span` (the current span by default); "" when there is none."""
    ctx = trace.set_span_in_context(span) if span is not None else None
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=ctx)
    return carrier.get(TRACEPARENT, "")


@contextlib.contextmanager
def continued(header: str | None) -> Iterator[None]:
    """Run the block in the context a `traceparent` names (a reaction's worker continues its
    message's span: its logs and commands carry it)."""
    ctx = context_of(header)
    if ctx is None:
        yield
        return
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def finish(span: Span, error: str | None = None) -> None:
    """End `span`, as an error with the reason when there is one (reasons name fields and
    rules, never values)."""
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error[:300]))
    span.end()


def consumer_span(header: str | None, destination: str, message_id: str | None = None) -> Span:
    """A CONSUMER span for one message taken from `destination` (a queue), a child of the
    context in its `traceparent` header. Started, not current: the caller ends it (`finish`)
    when the message is settled."""
    attributes: dict[str, Any] = {
        "messaging.system": "rabbitmq",
        "messaging.operation.name": "process",
        "messaging.destination.name": destination,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    return tracer.start_span(
        f"process {destination}",
        context=context_of(header),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    )


def producer_span(header: str, exchange: str, message_id: str, event_type: str) -> Span:
    """A PRODUCER span for publishing one stored event, a child of its stored context."""
    return tracer.start_span(
        f"publish {exchange}",
        context=context_of(header),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "rabbitmq",
            "messaging.operation.name": "publish",
            "messaging.destination.name": exchange,
            "messaging.message.id": message_id,
            "messaging.rabbitmq.destination.routing_key": event_type,
        },
    )


# Log correlation: the command being handled (its id and correlation id), for the log fields.

_command: ContextVar[tuple[str, str] | None] = ContextVar("carepath_command", default=None)


def handling(command_id: str, correlation_id: str) -> Token[tuple[str, str] | None]:
    """Name the command this call or worker handles (the logs' `command_id` and
    `correlation_id`); reset when the RPC ends (`ServerInterceptor`) or the worker does, or
    with the token returned."""
    return _command.set((command_id, correlation_id))


def not_handling() -> Token[tuple[str, str] | None]:
    """No command named (until reset with the token returned)."""
    return _command.set(None)


def reset(token: Token[tuple[str, str] | None]) -> None:
    _command.reset(token)


def current_command() -> tuple[str, str] | None:
    """(command id, correlation id) of the command being handled, if any."""
    return _command.get()


class ServerInterceptor(grpc.ServerInterceptor):
    """One SERVER span per RPC, a child of the caller's `traceparent` metadata, current while
    the call runs (so the command stores it and the logs carry it); its status is the call's."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(details)
        method: str = details.method
        if handler is None or method.startswith(UNTRACED_PREFIXES):
            return handler
        metadata = {k: v for k, v in details.invocation_metadata if isinstance(v, str)}
        service, _, name = method.lstrip("/").partition("/")

        @contextlib.contextmanager
        def traced(context: grpc.ServicerContext) -> Iterator[None]:
            token = not_handling()
            try:
                with tracer.start_as_current_span(
                    method.lstrip("/"),
                    context=PROPAGATOR.extract(metadata),
                    kind=SpanKind.SERVER,
                    attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
                    record_exception=False,  # exception texts may hold request values
                    set_status_on_exception=False,
                ) as span:
                    try:
                        yield
                    finally:
                        code = context.code() or grpc.StatusCode.OK  # type: ignore[attr-defined]
                        if not isinstance(code, grpc.StatusCode):
                            code = grpc.StatusCode.UNKNOWN
                        span.set_attribute("rpc.grpc.status_code", code.value[0])
                        if code in _SERVER_ERRORS:
                            span.set_status(Status(StatusCode.ERROR, code.name))
            finally:
                reset(token)

        if handler.unary_unary:
            unary = handler.unary_unary

            def unary_call(request: Any, context: grpc.ServicerContext) -> Any:
                with traced(context):
                    return unary(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_call, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            stream = handler.unary_stream

            def stream_call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                with traced(context):
                    yield from stream(request, context)

            return grpc.unary_stream_rpc_method_handler(
                stream_call, handler.request_deserializer, handler.response_serializer
            )
        return handler


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Sequence[tuple[str, str | bytes]] | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class ClientInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Puts the current trace context in every call's metadata (`traceparent`)."""

    @staticmethod
    def _with_context(details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        header = traceparent()
        if not header:
            return details
        return _CallDetails(  # type: ignore[return-value]
            details.method,
            details.timeout,
            [*(details.metadata or ()), (TRACEPARENT, header)],
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_context(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_context(details), request)
