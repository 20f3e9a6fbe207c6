"""Log lines as every process writes them (shared.process.setup_logging): one JSON object per
line with the trace and the command it belongs to, or one readable line for `make run`."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from shared import config, tracing
from shared.process import JsonLogFormatter, TextLogFormatter

TRACER = TracerProvider().get_tracer("tests")


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("services.admissions", logging.INFO, __file__, 1, message, (), None)


def test_a_line_inside_a_command_names_its_trace_span_command_and_correlation() -> None:
    formatter = JsonLogFormatter("admissions-serve")
    token = tracing.handling("admit-1", "story-7")
    try:
        with TRACER.start_as_current_span("AdmitPatient") as span:
            line = formatter.format(record("stay 4e1c admitted"))
    finally:
        tracing.reset(token)
    ids = span.get_span_context()
    assert json.loads(line) | {"time": "t"} == {
        "time": "t",
        "level": "INFO",
        "process": "admissions-serve",
        "logger": "services.admissions",
        "message": "stay 4e1c admitted",
        "trace_id": f"{ids.trace_id:032x}",
        "span_id": f"{ids.span_id:016x}",
        "command_id": "admit-1",
        "correlation_id": "story-7",
    }
    assert json.loads(line)["time"].endswith("+00:00")  # ISO 8601, UTC


def test_a_line_outside_any_span_or_command_has_only_the_common_fields() -> None:
    token = tracing.not_handling()
    try:
        line = JsonLogFormatter("pathway-project").format(record("consuming pathway.projector"))
    finally:
        tracing.reset(token)
    assert set(json.loads(line)) == {"time", "level", "process", "logger", "message"}


def test_the_text_format_is_one_readable_line_with_the_ids_at_the_end() -> None:
    formatter = TextLogFormatter("admissions-serve")
    token = tracing.not_handling()
    try:
        with TRACER.start_as_current_span("AdmitPatient") as span:
            line = formatter.format(record("stay 4e1c admitted"))
    finally:
        tracing.reset(token)
    assert " admissions-serve INFO services.admissions: stay 4e1c admitted [trace_id=" in line
    assert f"span_id={span.get_span_context().span_id:016x}" in line


def test_an_unknown_log_format_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(config.ConfigError, match="LOG_FORMAT must be json or text"):
        config.log_format()
    monkeypatch.setenv("LOG_FORMAT", "Text")
    assert config.log_format() == "text"
