"""Run the bundled registry: in a background thread (``RegistryServer``) or in the foreground.

``RegistryServer`` is what tests, ``otlp-feedback dev`` and anything else embedding a registry
use; ``serve_forever`` backs ``otlp-feedback registry``; ``python -m
otlp_feedback.registry.runner --host --port --db`` runs it as a subprocess and prints its URL on
stdout once it accepts connections.

``port=0`` picks a free port; ``url`` is known once ``start`` returns.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from otlp_feedback.httpserve import BackgroundHttpServer
from otlp_feedback.registry.server import create_app

logger = logging.getLogger(__name__)


class RegistryServer(BackgroundHttpServer):
    """The registry app served on a background thread; lifecycle as ``BackgroundHttpServer``
    (``start`` returns once connections are accepted; ``shutdown`` idempotent and safe before
    ``start``; a context manager; not restartable). The database opens in ``start``."""

    def __init__(self, *, db_path: str | Path, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(None, host=host, port=port, name="otlp-feedback-registry")
        self._db_path = db_path

    def start(self, timeout: float = 10.0) -> None:
        """As ``BackgroundHttpServer.start``; also raises ``StoreError`` if the database
        cannot be opened."""
        if self._app is None:
            self._app = create_app(self._db_path)
        try:
            super().start(timeout)
        except BaseException:
            if self._url is None:  # never served: the store is ours to close
                self._app.state.store.close()
            raise
        logger.info("schema registry listening on %s (db %s)", self.url, self._db_path)


def serve_forever(
    host: str, port: int, db_path: str | Path, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve in the foreground until SIGINT or SIGTERM, then shut down cleanly.

    ``on_ready`` receives the URL once connections are accepted. Must run on the main thread
    (signal handlers can only be installed there); previous handlers are restored on return.
    """
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("received signal %d, shutting down the schema registry", signum)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with RegistryServer(db_path=db_path, host=host, port=port) as server:
            if on_ready is not None:
                on_ready(server.url)
            stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m otlp_feedback.registry.runner",
        description="Run the bundled Confluent-compatible schema registry.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    parser.add_argument("--db", default="registry.db", help="SQLite file (created if missing)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    def announce(url: str) -> None:
        print(url, flush=True)  # the first stdout line, for scripts that started us on port 0

    serve_forever(args.host, args.port, args.db, on_ready=announce)
    return 0


if __name__ == "__main__":
    sys.exit(main())
