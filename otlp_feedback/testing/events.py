"""One fully populated typed event per type, for tests of code that reads the events back.

Every field, optional or not, is set to a value other than its default, so a round trip that
drops or mangles any field shows (``tests/unit/test_consumer.py`` checks that they do).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from otlp_feedback.events import (
    EventType,
    ExperimentResult,
    FeedbackEvent,
    ModelResponse,
    PerformanceMetrics,
    SystemHealth,
    UserFeedback,
)

_TS = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
_RECEIVED = datetime(2025, 3, 1, 12, 30, 16, tzinfo=UTC)


def _envelope(event_type: EventType, n: int, service: str) -> dict[str, Any]:
    return {
        "event_id": f"{event_type}-{n}",
        "timestamp": _TS,
        "received_at": _RECEIVED,
        "carrier": "log_record",
        "service": service,
        "environment": "staging",
        "trace_id": "5b8efff798038103d269b633813fc60c",
        "span_id": "eee19b7ec3c1b174",
        "request_id": f"chatcmpl-{n}",
        "session_id": f"sess-{n}",
        "user_id": "user-7",
        "attributes": {"app.ui": "web", "app.note": "call me at [PHONE]"},
        "client_id": "web-frontend",
        "redacted_fields": ["attributes.app.note"],
    }


def sample_events(n: int = 1, service: str = "support-bot") -> dict[EventType, FeedbackEvent]:
    """One event per type; ``n`` varies the ids (``<type>-<n>``, ``sess-<n>``, ...)."""
    return {
        "user_feedback": UserFeedback(
            **_envelope("user_feedback", n, service),
            rating=4.5,
            thumbs="up",
            comment="Clear and correct.",
            tags=["helpful", "fast"],
        ),
        "performance_metrics": PerformanceMetrics(
            **_envelope("performance_metrics", n, service),
            model="gpt-4o",
            response_model="gpt-4o-2024-08-06",
            provider="openai",
            operation="chat",
            latency_ms=812.5,
            input_tokens=120,
            output_tokens=48,
            cost_usd=0.0031,
            success=False,
            error_type="timeout",
            cache_hit=True,
            custom_metrics={"ttft_ms": 95.0},
            cache_read_input_tokens=64,
            reasoning_output_tokens=12,
            tokens_total=168,
        ),
        "model_response": ModelResponse(
            **_envelope("model_response", n, service),
            model="gpt-4o",
            quality_score=87.5,
            accuracy=0.9,
            relevance=0.8,
            coherence=0.95,
            completeness=0.7,
            safety=1.0,
            custom_scores={"tone": 0.6},
            evaluation_name="relevance",
            explanation="On topic.",
            prompt_hash="sha256:ab12",
            response_length=512,
            finish_reasons=["stop"],
            temperature=0.2,
            top_p=0.9,
            max_tokens=1024,
            top_k=40,
            score_label="pass",
            evaluator="judge-v3",
        ),
        "system_health": SystemHealth(
            **_envelope("system_health", n, service),
            status="degraded",
            error_rate=0.02,
            availability=0.995,
            cpu_percent=73.5,
            memory_mb=2048.0,
            memory_percent=61.0,
            network_mbps=12.5,
            active_requests=17,
        ),
        "experiment_result": ExperimentResult(
            **_envelope("experiment_result", n, service),
            experiment_id="prompt-v7",
            experiment_type="ab_test",
            variant_id="B",
            reward=1.0,
            cost=0.004,
            quality=0.85,
            latency_ms=640.0,
            user_satisfaction=4.0,
        ),
    }
