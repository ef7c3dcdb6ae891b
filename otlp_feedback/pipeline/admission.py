"""Admission: whether a request's batch may go on, decided once, on the count the batch gives.

Called by the ``Pipeline`` facade between ingest and process, before anything is validated:

1. the per-request limit (``validation.max_feedback_per_request``): validating and
   dead-lettering each of a flood of bad records costs far more than receiving them, so such a
   request is refused whole (``RequestTooLarge``) and the sender splits it;
2. the caller's ``Admission`` (the receiver's guard: its rate limit, and a feedback token's
   budget and bucket), which raises to refuse the request whole (``RateLimited``, with
   RetryInfo; ``PermissionDenied`` for a spent token budget).

An admission may also carry a ``RecordScope`` (a feedback token's): the process stage holds
each record to it, and rejects one outside it on its own, as it rejects an invalid one.

A transport passes its caller's admission to the pipeline's entry point; in-process callers
(tests, dead-letter replay) pass none.
"""

from __future__ import annotations

from typing import Protocol

from otlp_feedback.errors import RequestTooLarge
from otlp_feedback.events import FeedbackEvent
from otlp_feedback.pipeline.ingest import Batch


class RecordScope(Protocol):
    """What a caller may send, record by record (a feedback token's scope)."""

    def refusal(self, event: FeedbackEvent) -> str | None:
        """Why ``event`` is outside the scope (the rejection's reason), or None."""
        ...


class Admission(Protocol):
    """Decides whether one caller may send ``events`` feedback records now.

    ``admit`` raises (an ``OtlpFeedbackError``, e.g. ``RateLimited``) to refuse the request
    whole, and takes what it admits (tokens, budget) when it does not. Called at most once per
    request, from the request's thread.
    """

    def admit(self, events: int) -> None: ...

    @property
    def scope(self) -> RecordScope | None:
        """The scope each record is held to; None: any record the pipeline accepts."""
        ...


def admit(batch: Batch, max_per_request: int, admission: Admission | None) -> None:
    """Refuse ``batch`` whole if it is over the per-request limit or ``admission`` refuses it.
    Raises ``RequestTooLarge`` or whatever ``admission`` raises."""
    count = len(batch)
    check_count(count, max_per_request)
    if admission is not None:
        admission.admit(count)


def check_count(count: int, max_per_request: int) -> None:
    """The per-request limit alone. Raises ``RequestTooLarge`` when ``count`` is over it.

    Also asked by a door that counts a request's items before mapping them (the events API:
    items it refuses itself never reach the batch, and must not make an unbounded answer)."""
    if count > max_per_request:
        raise RequestTooLarge(
            f"request carries {count} feedback records, over the limit of "
            f"{max_per_request} (validation.max_feedback_per_request): send smaller batches"
        )
