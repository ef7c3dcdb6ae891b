"""The pipeline: OTLP requests (or typed events) in, Kafka records and dead letters out.

One request moves through the stages in order, each taking one typed value and handing the
next one (no stage imports a later one; ``tests/unit/test_layering.py`` holds them to it):

    startup.py    settings + registry -> SchemaBinding (serializers, encoder), RedactionRules
    ingest.py     payload (or mapped events) -> Batch: decode + map, or the native C path
    admission.py  Batch -> go / refuse whole (per-request limit, the caller's Admission)
    process.py    Batch -> validate -> redact -> encode -> Processed (records + rejections)
    deliver.py    Processed -> sink, with dead letters -> ExportOutcome
    facade.py     ``Pipeline``: composes them; start / shutdown / reload; the entry points
    outcome.py    ExportOutcome, PipelineStats (values the stages and the facade share)

Every receiver calls ``Pipeline.export(signal, payload, client_id, admission)``; typed events
that arrive already mapped call ``Pipeline.export_events``.
"""

from otlp_feedback.pipeline.admission import Admission, check_count
from otlp_feedback.pipeline.facade import Pipeline
from otlp_feedback.pipeline.ingest import Batch, Signal, decode
from otlp_feedback.pipeline.outcome import ExportOutcome, PipelineStats
from otlp_feedback.pipeline.startup import RedactionRules, subject_for

__all__ = [
    "Admission",
    "Batch",
    "ExportOutcome",
    "Pipeline",
    "PipelineStats",
    "RedactionRules",
    "Signal",
    "check_count",
    "decode",
    "subject_for",
]
