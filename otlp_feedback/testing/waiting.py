"""``wait_until``: await a condition that another thread or process makes true without
signalling it (a replayer's state, a port opening). Where there is an event to wait on, wait on
it instead; the timeout is a bound for what takes milliseconds, never a measure."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: a sleep that needs no ``time.sleep``
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        pause.wait(0.01)
