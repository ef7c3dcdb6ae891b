"""Instructions per record of the in-process pipeline, for A/B comparisons on a busy machine.

Wall-clock numbers on this shared VM swing by +-25%; instruction counts under
``valgrind --tool=callgrind`` do not. Run it twice, with ``--iterations 0`` and ``N``, and divide
the difference by ``N * records``. ``instructions.sh`` does exactly that.

``--stage map`` runs only the mapper; ``export`` the whole Python pipeline into the in-memory
sink; ``native`` the native fast path's C call alone (``NativeLogs.export``: map, validate,
redaction gate, encode); ``payload`` ``Pipeline.export("logs", payload)`` (C, then Python for the
records it defers) into the in-memory sink.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otlp_feedback.config import load_config
from otlp_feedback.mapping import map_logs_request
from otlp_feedback.native import NativeLogs
from otlp_feedback.pipeline import Pipeline
from otlp_feedback.registry.client import InMemoryRegistry
from otlp_feedback.sinks.memory import InMemorySink

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import build_request


def native_plan(pipeline: Pipeline) -> NativeLogs | None:
    """The pipeline's compiled native plan (what a request would use now)."""
    return pipeline.rules.native


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--stage", choices=("map", "export", "native", "payload"), default="export")
    args = parser.parse_args(argv)

    payload = build_request(args.records, seed=1).SerializeToString()
    sink = InMemorySink()
    pipeline = Pipeline(load_config(), InMemoryRegistry(), sink)
    pipeline.start()
    # One warm-up pass so that lazily built caches are not counted.
    pipeline.export_logs(ExportLogsServiceRequest.FromString(payload))
    sink.records.clear()
    if args.stage in ("native", "payload"):
        plan = native_plan(pipeline)
        assert plan is not None, "the native fast path is not built (see setup.py)"
        plan.export(payload, time.time_ns(), None)  # warm-up
        for _ in range(args.iterations):
            if args.stage == "native":
                plan.export(payload, time.time_ns(), None)
            else:
                pipeline.export("logs", payload)
                sink.records.clear()
        return
    for _ in range(args.iterations):
        request = ExportLogsServiceRequest.FromString(payload)
        if args.stage == "map":
            map_logs_request(request)
        else:
            pipeline.export_logs(request)
            sink.records.clear()


if __name__ == "__main__":
    main()
