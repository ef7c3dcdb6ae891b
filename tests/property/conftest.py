"""Property-test fixtures: a pipeline and a receiver on in-memory twins, shared per module
(hypothesis runs many examples per test; each example clears the sink instead)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hostile_requests import RECEIVED_NS

from otlp_feedback.config import load_config
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink


@pytest.fixture(scope="session", autouse=True)
def _no_otlp_feedback_env() -> Iterator[None]:
    """Settings come only from what a test passes: a stray OTLP_FEEDBACK_* would change them."""
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("OTLP_FEEDBACK_"):
                patch.delenv(key)
        yield


@pytest.fixture(scope="module")
def registry() -> InMemoryRegistry:
    return InMemoryRegistry()


@pytest.fixture(scope="module")
def sink() -> InMemorySink:
    return InMemorySink()


@pytest.fixture(scope="module")
def pipeline(registry: InMemoryRegistry, sink: InMemorySink) -> Iterator[Pipeline]:
    """A started pipeline whose clock reads ``RECEIVED_NS``, with default limits."""
    settings = load_config(receiver={"endpoint": "127.0.0.1:0"})
    running = Pipeline(settings, registry, sink, clock_ns=lambda: RECEIVED_NS)
    running.start()
    yield running
    running.shutdown(1.0)
