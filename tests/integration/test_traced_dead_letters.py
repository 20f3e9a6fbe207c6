"""A message a consumer dead-letters still ends its span, in the trace its publisher sent it
in, as an error with the reason; the good message beside it ends its span as projected. On the
real broker, for the projector (spans of this process, in memory) and for a reaction process
(its spans exported over OTLP to a collector on loopback)."""

from __future__ import annotations

from uuid import UUID

from opentelemetry import trace
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, StatusCode
from sqlalchemy.engine import Engine

from services.discharges.known_stays import KnownStays
from shared import tracing
from shared.broker import Tenant
from shared.config import StoreSettings
from tests.processes import nameko
from tests.support import ExportedSpan, otlp_collector, wait_for
from tests.wire import (
    MALFORMATIONS,
    admitted,
    dead_letters,
    empty_dead_letters,
    envelope,
    malformed,
    projecting,
    publish,
    stored,
)

#: A message missing `data.ward`: dead-lettered with "data.ward: Field required".
BROKEN = MALFORMATIONS[0]


def publishing(name: str) -> SpanContext:
    """The context a publisher sends a message in (the span ended: only its ids travel)."""
    with trace.get_tracer("tests").start_as_current_span(name) as span:
        return span.get_span_context()


def header(context: SpanContext) -> dict[str, str]:
    return {tracing.TRACEPARENT: tracing.traceparent(trace.NonRecordingSpan(context))}


def test_the_projectors_span_of_a_dead_lettered_message_ends_as_an_error_with_the_reason(
    engine: Engine, broker: Tenant, amqp_uri: str, spans: InMemorySpanExporter
) -> None:
    empty_dead_letters(amqp_uri)
    bad_context, good_context = publishing("bad publish"), publishing("good publish")
    good = envelope(admitted())
    with projecting(engine, broker, amqp_uri):
        publish(broker, "admissions", [("PatientAdmitted", malformed(BROKEN))], header(bad_context))
        publish(broker, "admissions", [("PatientAdmitted", good.to_json())], header(good_context))
        wait_for(lambda: stored(engine, [good.event_id]), what="the good admission projected")

        def ended(context: SpanContext) -> list[ReadableSpan]:
            return [
                s
                for s in spans.get_finished_spans()
                if s.parent is not None and s.parent.span_id == context.span_id
            ]

        (bad,) = wait_for(lambda: ended(bad_context), what="the dead letter's span ended")
        (projected,) = wait_for(lambda: ended(good_context), what="the good one's span ended")
    ((reason, _body),) = dead_letters(amqp_uri)
    assert BROKEN.reason in reason
    assert bad.context is not None and bad.context.trace_id == bad_context.trace_id
    assert bad.status.status_code == StatusCode.ERROR
    assert BROKEN.reason in (bad.status.description or "")
    assert bad.attributes is not None and bad.attributes["carepath.dead_lettered"] is True
    assert projected.name == "process PatientAdmitted"
    assert projected.status.status_code == StatusCode.UNSET


def test_a_reactions_span_of_a_dead_lettered_message_ends_as_an_error_with_the_reason(
    broker: Tenant, amqp_uri: str, tmp_path: object
) -> None:
    empty_dead_letters(amqp_uri)
    url = f"sqlite:///{tmp_path}/discharges.sqlite"
    stays = KnownStays(StoreSettings(url).sqlalchemy_url())
    bad_context, good_context = publishing("bad publish"), publishing("good publish")
    good = envelope(admitted())
    with (
        otlp_collector() as collector,
        nameko(
            "services.discharges.reactions",
            broker,
            {"discharges": url},
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "100",
            },
        ),
    ):
        publish(broker, "admissions", [("PatientAdmitted", malformed(BROKEN))], header(bad_context))
        publish(broker, "admissions", [("PatientAdmitted", good.to_json())], header(good_context))
        wait_for(lambda: stays.get(UUID(good.aggregate_id)), what="the good stay known")

        def exported(context: SpanContext) -> list[ExportedSpan]:
            parent = context.span_id.to_bytes(8, "big")
            return [s for s in collector.spans if s.span.parent_span_id == parent]

        (bad,) = wait_for(lambda: exported(bad_context), what="the dead letter's span exported")
        (reacted,) = wait_for(lambda: exported(good_context), what="the good one's span")
    stays.close()
    ((reason, _body),) = dead_letters(amqp_uri)
    assert BROKEN.reason in reason
    assert bad.service == "discharges-reactions"
    assert bad.span.trace_id == bad_context.trace_id.to_bytes(16, "big")
    assert bad.span.status.code == trace_pb2.Status.STATUS_CODE_ERROR
    assert BROKEN.reason in bad.span.status.message
    assert reacted.span.name == "process PatientAdmitted"
    assert reacted.span.status.code == trace_pb2.Status.STATUS_CODE_UNSET
