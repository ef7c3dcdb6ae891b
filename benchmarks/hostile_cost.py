"""What one maximum-size hostile string costs the receiver: CPU per rejected (or cut) request.

A 15 MiB text full of items every detector matches (``a@b.c 4111 1111 1111 1111``), sent as
the comment attribute, as the string body (both rejected: over ``validation.max_string_length``,
then dead-lettered) and as a covered attribute (``app.prompt``: cut at
``validation.max_attribute_value_len``, the event accepted). Each case runs in-process through
``Pipeline.export("logs", payload)`` into the in-memory sink, on the native and the Python path;
the median of ``--rounds`` process-CPU times is printed. Before Step 5 the same request cost
seconds (the whole value was scrubbed before the dead letter cut it).

Run: ``.venv/bin/python benchmarks/hostile_cost.py [--rounds 5] [--mib 15]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from otlp_feedback.config import load_config
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink
from otlp_feedback.testing.otlp import logs_request, make_log_record


def _records(text: str) -> dict[str, LogRecord]:
    name = "feedback.user_feedback"
    return {
        "comment attribute (rejected)": make_log_record(
            name, {"session.id": "s", "feedback.comment": text}
        ),
        "string body (rejected)": make_log_record(name, {"session.id": "s"}, body=text),
        "covered attribute (cut)": make_log_record(
            name, {"session.id": "s", "feedback.rating": 3, "app.prompt": text}
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mib", type=float, default=15.0)
    args = parser.parse_args()
    size = int(args.mib * 2**20)
    unit = "a@b.c 4111 1111 1111 1111 "
    text = (unit * (size // len(unit) + 1))[:size]
    payloads = {case: logs_request([r]).SerializeToString() for case, r in _records(text).items()}
    print(f"{args.mib:g} MiB text, median of {args.rounds} rounds, process CPU per request")
    for native in (True, False):
        settings = load_config(receiver={"endpoint": "127.0.0.1:0", "native_fast_path": native})
        sink = InMemorySink()
        pipeline = Pipeline(settings, InMemoryRegistry(), sink)
        pipeline.start()
        try:
            for case, payload in payloads.items():
                times = []
                for _ in range(args.rounds):
                    started = time.process_time()
                    outcome = pipeline.export("logs", payload)
                    times.append(time.process_time() - started)
                    sink.records.clear()
                path = "native" if native else "python"
                print(
                    f"{path:6}  {case:30} {statistics.median(times) * 1000:8.1f} ms  "
                    f"(accepted {outcome.accepted}, rejected {outcome.rejected}, "
                    f"dead-lettered {outcome.dead_lettered})"
                )
        finally:
            pipeline.shutdown(1.0)


if __name__ == "__main__":
    main()
