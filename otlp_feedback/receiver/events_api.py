"""The events API's wire format: ``POST /api/v1/events`` bodies in, its JSON answer out.

The route is served by the OTLP/HTTP port (``receiver/http.py``: same server, auth, limits,
size cap, gzip, status table); this module holds only what is the events API's own, as pure
functions:

- ``parse``: the body, one event (a JSON object) or a list of them, as JSON values; the request
  is refused whole (400) only when the body is not that (not UTF-8, not JSON, NaN/Infinity,
  nested too deeply, a scalar). Each item is then mapped on its own
  (``mapping.events_api.map_event``), so a bad event never costs the good ones around it;
- ``answer``: ``{"accepted": N, "rejected": [{"index": i, "event_type": ..., "reason": ...}]}``,
  the items the door refused and those the pipeline rejected, in body order. Errors that refuse
  the request whole are the OTLP/HTTP JSON answer: a ``google.rpc.Status`` as JSON
  (``{"code": 3, "message": ...}``), with ``Retry-After`` on 429/503.

Thread-safe (no state).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from otlp_feedback.errors import InvalidRequest
from otlp_feedback.mapping import RawFeedback
from otlp_feedback.mapping.events_api import Refused, location_of
from otlp_feedback.pipeline import ExportOutcome
from otlp_feedback.receiver.otlp_json import load_json

EVENTS_PATH = "/api/v1/events"


def parse(body: bytes) -> list[Any]:
    """The body's events: a list of JSON values (one object becomes a list of one).

    Raises ``InvalidRequest`` for a body that is not a JSON object or array.
    """
    data = load_json(body, parse_constant=_not_json)
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    raise InvalidRequest(
        "the body must be one event (a JSON object) or a list of events (a JSON array)"
    )


def answer(
    mapped: Sequence[RawFeedback | Refused], outcome: ExportOutcome, scrub: Callable[[str], str]
) -> bytes:
    """The response body for a processed request: what was accepted, and each item refused or
    rejected by its index in the body (``mapped`` is in body order). ``scrub`` (the pipeline's
    redactor) cleans what a refusal at the door quotes of the item, as the pipeline's
    rejections are cleaned."""
    rejected = [
        (i, item.event_type and scrub(item.event_type), scrub(item.reason))
        for i, item in enumerate(mapped)
        if isinstance(item, Refused)
    ]
    if outcome.rejections:  # found by location (the pipeline keeps each record's), Kafka's too
        index = {location_of(i): i for i in range(len(mapped))}
        rejected += [(index[r.location], r.event_type, r.reason) for r in outcome.rejections]
        rejected.sort(key=lambda entry: entry[0])
    body = {
        "accepted": outcome.accepted,
        "rejected": [{"index": i, "event_type": t, "reason": why} for i, t, why in rejected],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _not_json(constant: str) -> Any:
    """``NaN``/``Infinity``: Python's parser takes them, JSON (RFC 8259) does not."""
    raise ValueError(f"{constant} is not a JSON value")
