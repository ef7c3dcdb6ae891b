"""What happened: ``ExportOutcome`` (one request, built by process and completed by deliver) and
``PipelineStats`` (the counters since start, read from the telemetry).

Plain values, shared by the stages and the facade; they import no stage.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from otlp_feedback.observability.metrics import (
    ACCEPTED,
    DEAD_LETTER_FAILURES,
    DEAD_LETTERED,
    DELIVERY_FAILURES,
    IGNORED,
    NATIVE,
    REDACTED,
    REJECTED,
    REQUESTS,
    Telemetry,
)
from otlp_feedback.validation import Rejection


@dataclass(slots=True)
class ExportOutcome:
    """What happened to one request's records."""

    accepted: int = 0
    ignored: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    dead_lettered: int = 0
    accepted_by_type: Counter[str] = field(default_factory=Counter)
    redacted_by_type: Counter[str] = field(default_factory=Counter)
    native: int = 0  # events the native fast path encoded
    deferred: int = 0  # feedback records it handed to the Python stages

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    def message(self, limit: int) -> str:
        """English summary naming the first ``limit`` problems (for OTLP partial_success)."""
        if not self.rejections:
            return ""
        shown = "; ".join(r.describe() for r in self.rejections[:limit])
        more = self.rejected - limit
        suffix = f"; and {more} more" if more > 0 else ""
        return f"{self.rejected} feedback record(s) rejected: {shown}{suffix}"


@dataclass(frozen=True, slots=True)
class PipelineStats:
    """The pipeline's counters since start, read from its telemetry (``Pipeline.stats``).

    A copy: the counts themselves live in ``Telemetry``, which the pipeline reports to once per
    request and which the metrics endpoint reads. ``accepted``/``rejected`` are the sums of the
    by-type counts.
    """

    requests: int = 0
    ignored: int = 0
    dead_lettered: int = 0
    dead_letter_failures: int = 0
    delivery_failures: int = 0
    accepted_by_type: Counter[str] = field(default_factory=Counter)
    rejected_by_type: Counter[tuple[str, str]] = field(default_factory=Counter)
    redacted_by_type: Counter[str] = field(default_factory=Counter)
    native_events: int = 0
    native_deferred: int = 0

    @classmethod
    def of(cls, telemetry: Telemetry) -> PipelineStats:
        counts = telemetry.snapshot()

        def total(family: str) -> int:
            return int(counts.get((family,), 0))

        def by(family: str) -> Counter[tuple[str, ...]]:
            return Counter({k[1:]: int(v) for k, v in counts.items() if k[0] == family})

        return cls(
            requests=total(REQUESTS),
            ignored=total(IGNORED),
            dead_lettered=total(DEAD_LETTERED),
            dead_letter_failures=total(DEAD_LETTER_FAILURES),
            delivery_failures=total(DELIVERY_FAILURES),
            accepted_by_type=Counter({k[0]: v for k, v in by(ACCEPTED).items()}),
            rejected_by_type=Counter({(k[0], k[1]): v for k, v in by(REJECTED).items()}),
            redacted_by_type=Counter({k[0]: v for k, v in by(REDACTED).items()}),
            native_events=int(counts.get((NATIVE, "native"), 0)),
            native_deferred=int(counts.get((NATIVE, "deferred"), 0)),
        )

    @property
    def accepted(self) -> int:
        return sum(self.accepted_by_type.values())

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_type.values())
