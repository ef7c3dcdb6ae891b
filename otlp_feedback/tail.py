"""What ``otlp-feedback tail`` shows: which events pass its filters, and how each one is printed.

Pure functions, the clock passed in; ``cli._tail`` wires them to ``FeedbackConsumer``.

- ``parse_time``: ``--since``/``--until`` values, ISO-8601 (a naive time is UTC) or relative to
  now (``30s``, ``10m``, ``2h``, ``7d``).
- ``TailFilter``: ``--service`` and the time window, on the event's own ``timestamp``.
- ``json_line``: one JSON object per event, every control and non-ASCII character escaped.
- ``letter_json_line`` / ``letter_table_row``: the same for ``dlq tail``'s dead letters (the
  reason first, then the record as sent).
- ``table_header`` / ``table_row``: fixed-width columns time, type, service, then the type's key
  fields as ``name=value``; strings are cut short and unprintable characters escaped, so a
  hostile value cannot break the layout or drive the terminal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from otlp_feedback.encoding.dead_letter import DeadLetter
from otlp_feedback.events import EventType, FeedbackEvent, event_to_json_dict

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

# Per event type, the fields a table row shows after time/type/service (when set).
KEY_FIELDS: dict[EventType, tuple[str, ...]] = {
    "user_feedback": ("session_id", "rating", "thumbs", "comment", "tags"),
    "performance_metrics": (
        "model",
        "latency_ms",
        "input_tokens",
        "output_tokens",
        "tokens_total",
        "cost_usd",
        "success",
        "error_type",
    ),
    "model_response": ("model", "quality_score", "evaluation_name", "score_label", "evaluator"),
    "system_health": ("status", "error_rate", "cpu_percent", "memory_percent", "active_requests"),
    "experiment_result": ("experiment_id", "variant_id", "reward", "latency_ms"),
}
_TIME_W, _TYPE_W, _SERVICE_W, _TEXT_MAX = 23, 19, 16, 40


def parse_time(text: str, now: datetime) -> datetime:
    """An aware UTC datetime for ``text``: ``10m`` is ten minutes before ``now``; ISO-8601 is
    taken as written (UTC when it names no offset). Raises ``ValueError``."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        amount, unit = relative.groups()
        return now - timedelta(**{_UNITS[unit]: float(amount)})
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither ISO-8601 (2025-03-01T12:00:00Z) nor relative (30s, 10m, 2h, 7d)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True)
class TailFilter:
    """Which events ``tail`` prints: any of ``services`` (empty: all), with a ``timestamp`` in
    ``[since, until)`` (either bound may be open)."""

    services: Collection[str] = field(default_factory=frozenset)
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, event: FeedbackEvent) -> bool:
        if self.services and event.service not in self.services:
            return False
        if self.since is not None and event.timestamp < self.since:
            return False
        return self.until is None or event.timestamp < self.until


def json_line(event: FeedbackEvent) -> str:
    """The event as one line of ASCII JSON, ``event_type`` first."""
    return json.dumps(event_to_json_dict(event))


def letter_json_line(body: Mapping[str, object]) -> str:
    """A dead letter's stored body as one line of ASCII JSON: why it was refused first
    (``reason``, ``event_type``, ``location``), then the record as sent."""
    first = ("reason", "event_type", "location", "event_id", "event_name", "carrier")
    ordered = {k: body[k] for k in first if k in body}
    ordered.update((k, v) for k, v in body.items() if k not in ordered)
    return json.dumps(ordered)


def letter_table_header() -> str:
    return _row("TIME (UTC)", "TYPE", "SERVICE", "REASON")


def letter_table_row(letter: DeadLetter) -> str:
    """Time (the record's own), event type, service, then the reason, escaped and cut."""
    return _row(
        _time(datetime.fromtimestamp(letter.source.time_ns / 1e9, UTC)),
        letter.source.event_type,
        _service(letter.service),
        _cut(_escape(letter.reason), 4 * _TEXT_MAX),
    )


def table_header() -> str:
    return _row("TIME (UTC)", "TYPE", "SERVICE", "DETAILS")


def table_row(event: FeedbackEvent) -> str:
    details = []
    for name in KEY_FIELDS[event.event_type]:
        value = getattr(event, name, None)
        if value is None or value == [] or (name == "success" and value is True):
            continue
        details.append(f"{name}={_show(value)}")
    return _row(_time(event.timestamp), event.event_type, _service(event.service), details)


def _time(when: datetime) -> str:
    """The time column: UTC, to the millisecond."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _service(name: str | None) -> str:
    """The service column: escaped and cut, ``-`` when there is none."""
    return _cut(_escape(name or "-"), _SERVICE_W)


def _row(when: str, event_type: str, service: str, details: str | list[str]) -> str:
    rest = details if isinstance(details, str) else " ".join(details)
    return f"{when:<{_TIME_W}}  {event_type:<{_TYPE_W}}  {service:<{_SERVICE_W}}  {rest}".rstrip()


def _show(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(_show(v) for v in value)
    if isinstance(value, str):
        text = _cut(_escape(value), _TEXT_MAX)
        return '"' + text.replace('"', '\\"') + '"' if re.search(r'[\s"=,]', text) else text
    return str(value)


def _escape(text: str) -> str:
    """Unprintable characters (controls, bidi overrides, line separators) as ``\\x..``/``\\u..``."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
