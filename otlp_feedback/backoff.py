"""Jittered exponential backoff for the background retries of start-up (schema bootstrap, topic
creation), in the style of opentelemetry-python's exporters: a generator of delays, each waited
on a ``threading.Event`` that shutdown sets, so a retry loop never delays a stop.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator


def backoff_delays(initial: float, maximum: float) -> Iterator[float]:
    """``initial``, doubling up to ``maximum``, each scaled by a random factor in [0.8, 1.2]
    so that many receivers restarted together do not retry in step. Endless."""
    delay = initial
    while True:
        yield delay * random.uniform(0.8, 1.2)
        delay = min(maximum, delay * 2)


def retry_until(
    attempt: Callable[[], bool],
    stop: threading.Event,
    initial: float = 0.5,
    maximum: float = 30.0,
) -> bool:
    """Call ``attempt`` until it returns True or ``stop`` is set, waiting a backoff delay on
    ``stop`` between calls. Returns True if an attempt succeeded, False if stopped first."""
    for delay in backoff_delays(initial, maximum):
        if stop.is_set():
            return False
        if attempt():
            return True
        if stop.wait(delay):
            return False
    return False  # pragma: no cover - backoff_delays is endless
