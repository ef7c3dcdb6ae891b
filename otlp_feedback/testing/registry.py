"""``DownRegistry``: the in-memory registry twin that answers nothing until ``bring_up``, for
the start-up tests (the registry is down when the receiver starts, then comes back)."""

from __future__ import annotations

import threading

from otlp_feedback.errors import RegistryUnavailable
from otlp_feedback.registry.client import InMemoryRegistry


class DownRegistry(InMemoryRegistry):
    """Raises ``RegistryUnavailable`` from every call until ``bring_up``; ``attempts`` counts
    the calls refused and ``refused`` is set at the first one (await it, never sleep)."""

    def __init__(self) -> None:
        super().__init__()
        self.up = threading.Event()
        self.refused = threading.Event()
        self.attempts = 0

    def bring_up(self) -> None:
        self.up.set()

    def _check(self) -> None:
        if not self.up.is_set():
            self.attempts += 1
            self.refused.set()
            raise RegistryUnavailable("schema registry failed (test): connection refused")

    def register(self, subject: str, schema_text: str) -> int:
        self._check()
        return super().register(subject, schema_text)

    def lookup(self, subject: str, schema_text: str) -> int:
        self._check()
        return super().lookup(subject, schema_text)

    def set_compatibility(self, subject: str, level: str) -> None:
        self._check()
        super().set_compatibility(subject, level)
