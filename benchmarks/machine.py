"""What the machine is doing, so that benchmark numbers can be read in context.

The benchmark machine is a 2-core VM whose speed varies with load outside it (seen here: the
same single-threaded loop ran 1.8x slower at one hour than at another, with nothing else
running inside the VM). ``speed_index`` measures that speed now; ``busy_seconds`` tells how
much CPU everything inside the VM used.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def speed_index(seconds: float = 0.5) -> float:
    """Millions of iterations per CPU-second of a fixed pure-Python loop (higher is faster).

    Seen here between 19 and 27 within minutes; compare results taken at similar indexes.
    """
    started = time.process_time()
    done = 0
    while time.process_time() - started < seconds:
        total = 0
        for i in range(10_000):
            total += i
        done += 10_000
    return round(done / (time.process_time() - started) / 1e6, 1)


def busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK
