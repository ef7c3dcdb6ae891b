"""Stage 2 of the pipeline: find feedback in OTLP requests and lift it into ``RawFeedback``.

Pure functions over the protobuf messages: no clock, I/O or config lookups (the receive time is
passed in). ``logs.map_logs_request`` and ``traces.map_traces_request`` are the entry points
(``logs.feedback_locations`` says which records a request's feedback records are, without
mapping them: the pipeline's ingest uses it to map only the records it needs);
``convention`` holds the feedback convention (event names and attribute keys) as tables.
"""

from otlp_feedback.mapping.logs import map_logs_request
from otlp_feedback.mapping.records import MappedRequest, RawFeedback
from otlp_feedback.mapping.traces import map_traces_request

__all__ = ["MappedRequest", "RawFeedback", "map_logs_request", "map_traces_request"]
