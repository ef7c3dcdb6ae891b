"""Unit-test fixtures: the OTLP/JSON requests in ``tests/data`` and a pipeline wired to the
in-memory registry and sink. Builders live in ``otlp_builders`` (imported by the test files)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otlp_builders import RECEIVED_NS, load_otlp_json

from otlp_feedback.config import Settings, load_config
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink


@pytest.fixture(autouse=True)
def _no_otlp_feedback_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come only from what a test passes: a stray OTLP_FEEDBACK_* would change them."""
    for key in os.environ:
        if key.startswith("OTLP_FEEDBACK_"):
            monkeypatch.delenv(key)


@pytest.fixture
def logs_fixture() -> ExportLogsServiceRequest:
    """``tests/data/logs_feedback.json``: every event type as log records, plus noise."""
    return load_otlp_json("logs_feedback.json", ExportLogsServiceRequest)


@pytest.fixture
def traces_fixture() -> ExportTraceServiceRequest:
    """``tests/data/traces_feedback.json``: span events, GenAI spans, plus noise."""
    return load_otlp_json("traces_feedback.json", ExportTraceServiceRequest)


@pytest.fixture
def settings() -> Settings:
    return load_config(receiver={"endpoint": "127.0.0.1:0"})


@pytest.fixture
def registry() -> InMemoryRegistry:
    return InMemoryRegistry()


@pytest.fixture
def sink() -> InMemorySink:
    return InMemorySink()


@pytest.fixture
def pipeline(
    settings: Settings, registry: InMemoryRegistry, sink: InMemorySink
) -> Iterator[Pipeline]:
    """A started pipeline whose clock reads ``RECEIVED_NS``."""
    running = Pipeline(settings, registry, sink, clock_ns=lambda: RECEIVED_NS)
    running.start()
    yield running
    running.shutdown(1.0)


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    """The pool an OTLP/HTTP app runs its exports on (``http_test_client``)."""
    pool = ThreadPoolExecutor(4, thread_name_prefix="test_http")
    yield pool
    pool.shutdown(wait=True)
