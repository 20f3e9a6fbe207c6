"""A discharge followed through the system by its trace, and its logs kept free of personal
data: the hospital's gRPC call on loopback, the discharges store and relay, the real broker,
the projector and the read model, admissions' nameko reaction closing the stay, and that
closing again through the admissions relay and the projector — on each backend.

The spans of this process (servers, relays, projector) are read with the SDK's in-memory
exporter; the reaction process exports its own over OTLP to a collector on loopback, as it
would to a production collector (`OTEL_EXPORTER_OTLP_ENDPOINT`)."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import grpc
import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    discharges_pb2,
    discharges_pb2_grpc,
)
from services.discharges.application import DischargesApplication
from services.pathway import readmodel as rm
from shared.broker import Tenant
from shared.ids import FNR_SYSTEM
from shared.process import JsonLogFormatter
from tests.conftest import HOSPITAL, MUNICIPALITY, OTHER_HOSPITAL
from tests.processes import nameko
from tests.support import (
    Collector,
    ExportedSpan,
    Harness,
    auth,
    make_fnr,
    meta,
    otlp_collector,
    wait_for,
)

FNR = make_fnr(17, 5, 41, 230)
PATIENT = {"system": FNR_SYSTEM, "value": FNR}
#: Clinical text with a name in it: it must reach no log line.
WARD = "Medisinsk sengepost 3, rom hos Kari Nordmann"


@contextmanager
def admissions_reactions(
    broker: Tenant,
    backend: dict[str, str],
    collector: Collector | None = None,
    stderr: IO[str] | None = None,
) -> Iterator[None]:
    """admissions' reaction process (a discharge closes the stay), exporting its spans to
    `collector` and logging to `stderr` when given."""
    env = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
    if collector is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.endpoint
    with nameko("services.admissions.reactions", broker, backend, env=env, stderr=stderr):
        yield


def admitted_and_ready(system: Harness) -> str:
    """A patient living in MUNICIPALITY, admitted acutely by HOSPITAL and declared ready for
    discharge; returns the stay's id."""
    system.register(PATIENT, municipality=MUNICIPALITY.her_id)
    admissions = admissions_pb2_grpc.AdmissionServiceStub(
        system.channel(system.servers["admissions"])
    )
    stay = admissions.AdmitPatient(
        admissions_pb2.AdmitPatientRequest(
            metadata=meta(f"admit-{uuid.uuid4().hex[:8]}", hours=-30),
            patient=common_pb2.PatientIdentifier(**PATIENT),
            ward=WARD,
            admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
            municipality_her_id=MUNICIPALITY.her_id,
        ),
        metadata=auth(HOSPITAL),
    )
    # discharges' own view of the stay, as its reaction to PatientAdmitted fills it
    app = system.apps["discharges"]
    assert isinstance(app, DischargesApplication)
    app.stays.admitted(stay.stay_id, PATIENT, HOSPITAL.her_id, MUNICIPALITY.her_id)
    discharges(system).DeclareReadyForDischarge(
        discharges_pb2.DeclareReadyForDischargeRequest(
            metadata=meta(f"ready-{uuid.uuid4().hex[:8]}", hours=-20), stay_id=stay.stay_id
        ),
        metadata=auth(HOSPITAL),
    )
    return str(stay.stay_id)


def discharges(system: Harness) -> discharges_pb2_grpc.DischargeServiceStub:
    return discharges_pb2_grpc.DischargeServiceStub(system.channel(system.servers["discharges"]))


def discharge(system: Harness, stay_id: str, by: object = HOSPITAL) -> None:
    discharges(system).DischargePatient(
        discharges_pb2.DischargePatientRequest(
            metadata=meta(f"out-{uuid.uuid4().hex[:8]}", hours=-2),
            stay_id=stay_id,
            destination=discharges_pb2.DISCHARGE_DESTINATION_HOME,
        ),
        metadata=auth(by),  # type: ignore[arg-type]
    )


def stay_closed(system: Harness, stay_id: str) -> bool:
    """The reaction's StayClosed is in the read model."""
    query = sa.select(rm.events.c.event_id).where(
        rm.events.c.event_type == "StayClosed", rm.events.c.aggregate_id == stay_id
    )
    with system.engine.connect() as conn:
        return conn.execute(query).first() is not None


def one(spans: Sequence[ReadableSpan], name: str, parent: int) -> ReadableSpan:
    """The span named `name` whose parent is the span `parent`."""
    found = [s for s in spans if s.name == name and s.parent and s.parent.span_id == parent]
    assert len(found) == 1, f"{name} under {parent:016x}: {[s.name for s in spans]}"
    return found[0]


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def test_a_discharge_is_one_trace_from_the_hospitals_call_to_the_read_model_and_the_reaction(
    system: Harness, broker: Tenant, backend: dict[str, str], spans: InMemorySpanExporter
) -> None:
    exporter = spans
    with otlp_collector() as collector, admissions_reactions(broker, backend, collector):
        stay_id = admitted_and_ready(system)
        exporter.clear()
        with trace.get_tracer("tests").start_as_current_span("the hospital discharges") as call:
            discharge(system, stay_id)
        trace_id = call.get_span_context().trace_id
        wait_for(lambda: stay_closed(system, stay_id), timeout=60, what="StayClosed projected")

        def reaction() -> list[ExportedSpan]:
            return [
                s
                for s in collector.spans
                if s.span.name == "process PatientDischarged"
                and s.span.trace_id == trace_id.to_bytes(16, "big")
            ]

        (reacted,) = wait_for(reaction, timeout=30, what="the reaction's span exported")

    def in_trace() -> list[ReadableSpan]:
        return [
            s
            for s in exporter.get_finished_spans()
            if s.context is not None and s.context.trace_id == trace_id
        ]

    wait_for(
        lambda: any(s.name == "process StayClosed" for s in in_trace()),
        what="the projector's span of StayClosed",
    )
    local = in_trace()
    root = call.get_span_context().span_id
    # the hospital's call: one server span, a child of the caller's context (gRPC metadata)
    server = one(local, "carepath.v1.DischargeService/DischargePatient", root)
    assert server.kind == SpanKind.SERVER
    assert server.attributes is not None and server.attributes["rpc.grpc.status_code"] == 0
    # the relay continues the context stored with the event, and sends its own in the header
    published = one(local, "publish discharges.events", span_id(server))
    assert published.kind == SpanKind.PRODUCER
    # the projector's span of the message is a child of its publishing
    projected = one(local, "process PatientDischarged", span_id(published))
    assert projected.kind == SpanKind.CONSUMER
    assert projected.status.status_code != StatusCode.ERROR
    # the reaction process's span too, exported over OTLP
    assert reacted.service == "admissions-reactions"
    assert reacted.span.parent_span_id == span_id(published).to_bytes(8, "big")
    assert reacted.span.kind == trace_pb2.Span.SPAN_KIND_CONSUMER
    assert reacted.span.status.code != trace_pb2.Status.STATUS_CODE_ERROR
    # the reaction's command (the stay closed) is stored, relayed and projected in its span
    reaction_span = int.from_bytes(reacted.span.span_id, "big")
    closed = one(local, "publish admissions.events", reaction_span)
    closed_projected = one(local, "process StayClosed", span_id(closed))
    # each read-model transaction is linked to the messages it wrote
    writes = [s for s in exporter.get_finished_spans() if s.name == "write pathway read model"]
    for message in (projected, closed_projected):
        assert any(link.context.span_id == span_id(message) for w in writes for link in w.links), (
            f"no read-model write linked to {message.name}"
        )


def test_the_logs_of_an_admission_and_a_discharge_name_no_patient_and_no_clinical_text(
    system: Harness, broker: Tenant, backend: dict[str, str], tmp_path: Path
) -> None:
    """Every log line at INFO (this process's servers, relays and projector, and the reaction
    process) is one JSON object, and none holds the fødselsnummer or the ward's text."""
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(JsonLogFormatter("tests"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    reactions_log = tmp_path / "reactions.log"
    try:
        with reactions_log.open("w") as stderr, admissions_reactions(broker, backend, None, stderr):
            stay_id = admitted_and_ready(system)
            with pytest.raises(grpc.RpcError) as refused:  # another hospital's try
                discharge(system, stay_id, by=OTHER_HOSPITAL)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            discharge(system, stay_id)
            wait_for(lambda: stay_closed(system, stay_id), timeout=60, what="StayClosed")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = [
        line
        for line in (captured.getvalue() + reactions_log.read_text()).splitlines()
        if line.strip()
    ]
    records = [json.loads(line) for line in lines]  # every line one JSON object
    assert any(
        r["process"] == "admissions-reactions" and r["message"].startswith("running")
        for r in records
    )
    for record in records:
        assert {"time", "level", "process", "logger", "message"} <= set(record)
    text = "\n".join(lines)
    assert FNR not in text
    assert "Nordmann" not in text and "sengepost" not in text
