"""Log lines that come in floods, deduplicated and rate-limited: librdkafka's own, and the
pipeline's rejections (``REJECTIONS_LOGGER``).

``Throttle`` lets the first line of each kind through, then at most one per ``interval_s``,
saying how many like it it held back meanwhile. What a kind is, is the filter's ``kind``
function: librdkafka lines by facility and message with the numbers blanked (``kind_of``),
rejections by event type, category and reason (``rejection_kind``).

librdkafka:

Left alone, librdkafka writes ``%3|1733..|FAIL|rdkafka#producer-1| ...`` straight to stderr,
past the JSON log format, hundreds of lines a minute while the broker is down.
``KafkaConfig.client_config()`` (the settings every producer, consumer and admin client is
built from) hands each client ``LIBRDKAFKA_LOGGER`` as confluent-kafka's ``logger``, which calls
``logger.log(level, "%s [%s] %s", facility, client_name, message)`` from the client's
``poll``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

LOGGER_NAME = "otlp_feedback.librdkafka"
INTERVAL_S = 60.0
MAX_KINDS = 256

# Counts and durations vary between otherwise identical lines ("after 3ms in state CONNECT,
# 4 identical error(s) suppressed"); a kind is the line with its numbers blanked.
_NUMBERS = re.compile(r"\d+")


def kind_of(record: logging.LogRecord) -> tuple[int, str]:
    """What makes two librdkafka lines the same: level, facility and message, numbers aside
    (the client's name is not part of it: a rebuilt producer repeats its predecessor)."""
    args = record.args if isinstance(record.args, tuple) else ()
    facility, message = (args[0], args[2]) if len(args) == 3 else ("", record.getMessage())
    return record.levelno, f"{facility}|{_NUMBERS.sub('#', str(message))}"


# A rejection's reason may end with the value it refused; one kind whatever the value.
_GOT = re.compile(r" \(got .*\)$", re.DOTALL)


def rejection_kind(record: logging.LogRecord) -> Hashable:
    """Rejections are the same kind when event type, category and reason are, the value the
    reason quotes aside (``(got 9)``)."""
    args = record.args if isinstance(record.args, tuple) else ()
    return record.levelno, tuple(_GOT.sub("", str(a)) for a in args)


class Throttle(logging.Filter):
    """Passes a line of a kind not seen for ``interval_s`` seconds; drops (and counts) the
    rest. The kinds remembered are bounded (``max_kinds``, least recently seen forgotten).
    Thread-safe: each client's poll thread logs through it."""

    def __init__(
        self,
        interval_s: float = INTERVAL_S,
        max_kinds: int = MAX_KINDS,
        clock: Callable[[], float] = time.monotonic,
        kind: Callable[[logging.LogRecord], Hashable] = kind_of,
    ) -> None:
        super().__init__()
        self._kind = kind
        self._interval_s = interval_s
        self._max_kinds = max_kinds
        self._clock = clock
        self._lock = threading.Lock()
        # kind -> (when it was last let through, lines dropped since)
        self._kinds: OrderedDict[Hashable, tuple[float, int]] = OrderedDict()

    def reset(self) -> None:
        """Forget every kind (tests)."""
        with self._lock:
            self._kinds.clear()

    def filter(self, record: logging.LogRecord) -> bool:
        kind = self._kind(record)
        now = self._clock()
        with self._lock:
            last = self._kinds.get(kind)
            if last is not None and now - last[0] < self._interval_s:
                self._kinds[kind] = (last[0], last[1] + 1)
                self._kinds.move_to_end(kind)
                return False
            self._kinds[kind] = (now, 0)
            self._kinds.move_to_end(kind)
            while len(self._kinds) > self._max_kinds:
                self._kinds.popitem(last=False)
        if last is not None and last[1]:
            record.msg = f"{record.msg} ({last[1]} more like it in the last {now - last[0]:.0f}s)"
        return True


LIBRDKAFKA_LOGGER = logging.getLogger(LOGGER_NAME)
LIBRDKAFKA_LOGGER.addFilter(Throttle())

REJECTIONS_LOGGER = logging.getLogger("otlp_feedback.rejections")
REJECTIONS_THROTTLE = Throttle(kind=rejection_kind)
REJECTIONS_LOGGER.addFilter(REJECTIONS_THROTTLE)
