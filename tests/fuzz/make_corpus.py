"""Write the fuzzer's seed corpus (``corpus/``: small valid requests of each carrier) and its
dictionary (``convention.dict``: the convention's event names and attribute keys, which libFuzzer
splices into inputs).

Each corpus file is the harness's input format: one byte for the carrier (0: logs, 1: traces),
then the serialized export request. Re-run after changing the convention::

    .venv/bin/python tests/fuzz/make_corpus.py
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf.message import Message

from otlp_feedback.mapping import convention as conv
from otlp_feedback.testing.otlp import logs_request, make_log_record, make_span, traces_request

CORPUS = Path(__file__).parent / "corpus"
DICTIONARY = Path(__file__).parent / "convention.dict"
RESOURCE = {"service.name": "support-bot", "deployment.environment.name": "staging"}
T0 = 1_735_689_600_000_000_000
TRACE_ID, SPAN_ID = bytes(range(1, 17)), bytes(range(1, 9))

LOGS: dict[str, Message] = {
    "logs-user-feedback": logs_request(
        [
            make_log_record(
                "feedback.user_feedback",
                {
                    "event.id": "e-1",
                    "session.id": "s-1",
                    "feedback.rating": 4,
                    "feedback.thumbs": "up",
                    "feedback.tags": ["helpful", "fast"],
                    "gen_ai.response.id": "chatcmpl-1",
                },
                body="Spot on, thanks",
                time_unix_nano=T0,
                trace_id=TRACE_ID,
                span_id=SPAN_ID,
            )
        ],
        RESOURCE,
    ),
    "logs-every-event-type": logs_request(
        [
            make_log_record(
                "feedback.performance_metrics",
                {
                    "gen_ai.request.model": "gpt-4o",
                    "feedback.latency_ms": 812.5,
                    "gen_ai.usage.input_tokens": 120,
                    "feedback.metric.ttft_ms": 95.0,
                },
            ),
            make_log_record(
                "feedback.model_response",
                {
                    "feedback.quality_score": 87.5,
                    "feedback.quality.relevance": 0.8,
                    "gen_ai.response.finish_reasons": ["stop"],
                },
            ),
            make_log_record(
                "feedback.system_health",
                {"feedback.health.status": "degraded", "feedback.health.error_rate": 0.02},
            ),
            make_log_record(
                "feedback.experiment_result",
                {
                    "feedback.experiment.id": "prompt-v7",
                    "feedback.experiment.type": "ab_test",
                    "feedback.experiment.variant_id": "B",
                    "feedback.experiment.reward": 1.0,
                },
            ),
        ],
        RESOURCE,
    ),
    "logs-evaluation-and-legacy-event-name": logs_request(
        [
            make_log_record(
                "gen_ai.evaluation.result",
                {
                    "gen_ai.evaluation.name": "user_feedback",
                    "session.id": "s-2",
                    "gen_ai.evaluation.score.value": 5,
                    "gen_ai.evaluation.score.label": "thumbs_up",
                },
            ),
            make_log_record(
                "",
                {
                    "event.name": "feedback.user_feedback",
                    "session.id": "s-3",
                    "feedback.comment": "ok",
                },
            ),
            make_log_record("", {"http.method": "GET"}, body={"session.id": "s-4"}),
        ],
        RESOURCE,
    ),
    "logs-invalid-values": logs_request(
        [
            make_log_record(
                "feedback.user_feedback",
                {
                    "session.id": "",
                    "feedback.rating": float("nan"),
                    "feedback.thumbs": 1,
                    "feedback.tags": [["nested"], {"k": b"\x00"}],
                },
                time_unix_nano=2**64 - 1,
                trace_id=b"\x01\x02\x03",
            ),
        ],
        RESOURCE,
    ),
}
TRACES: dict[str, Message] = {
    "traces-span-events": traces_request(
        [
            make_span(
                "POST /chat",
                {"session.id": "s-1"},
                events=[
                    ("feedback.user_feedback", {"feedback.rating": 5}, T0),
                    (
                        "gen_ai.evaluation.result",
                        {
                            "gen_ai.evaluation.name": "relevance",
                            "gen_ai.evaluation.score.value": 0.66,
                        },
                        T0,
                    ),
                    ("exception", {"exception.type": "ValueError"}, T0),
                ],
                trace_id=TRACE_ID,
                span_id=SPAN_ID,
            )
        ],
        RESOURCE,
    ),
    "traces-genai-spans": traces_request(
        [
            make_span(
                "chat gpt-4o",
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.usage.input_tokens": 120,
                    "gen_ai.usage.output_tokens": 48,
                },
                start_time_unix_nano=T0,
                end_time_unix_nano=T0 + 1_250_000_000,
            ),
            make_span("execute_tool search", {"gen_ai.operation.name": "execute_tool"}),
            make_span(
                "chat claude",
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.response.model": "claude",
                    "error.type": "timeout",
                },
                start_time_unix_nano=T0,
                end_time_unix_nano=T0 + 5,
                error=True,
            ),
        ],
        RESOURCE,
    ),
}


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    for carrier, requests in enumerate((LOGS, TRACES)):  # the first byte: 0 logs, 1 traces
        for name, request in requests.items():
            serialized = request.SerializeToString(deterministic=True)
            (CORPUS / name).write_bytes(bytes([carrier]) + serialized)
    words = sorted(
        {*conv.FEEDBACK_EVENT_NAMES, conv.GENAI_EVALUATION_EVENT, *conv.THUMBS_LABELS}
        | {key for keys in conv.CONSUMED_KEYS.values() for key in keys}
        | {prefix for prefix, _ in conv.PREFIX_MAPS.values()}
        | {"up", "down", "healthy", "degraded", "unhealthy", "ab_test", "user_feedback"}
    )
    DICTIONARY.write_text("".join(f'"{word}"\n' for word in words))


if __name__ == "__main__":
    main()
