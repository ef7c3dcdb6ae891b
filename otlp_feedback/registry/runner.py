"""Run the bundled registry: in a background thread (``RegistryServer``) or in the foreground.

``RegistryServer`` is what tests, ``otlp-feedback dev`` and anything else embedding a registry
use; ``serve_forever`` backs ``otlp-feedback registry``; ``python -m
otlp_feedback.registry.runner --host --port --db`` runs it as a subprocess and prints its URL on
stdout once it accepts connections.

The listening socket is bound here, before uvicorn starts, so ``port=0`` picks a free port with
no window in which another process could take it, and ``url`` is known before ``start`` returns.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType

import uvicorn

from otlp_feedback.registry.server import create_app

logger = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn's server, announcing the end of startup on a thread-safe event."""

    def __init__(self, config: uvicorn.Config, started: threading.Event) -> None:
        super().__init__(config)
        self._started_event = started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            # Set on failure too, so start() stops waiting and reports the failure.
            self._started_event.set()


class RegistryServer:
    """The registry app served by uvicorn on a background thread.

    Lifecycle: ``start`` returns once connections are accepted; ``shutdown`` is idempotent and
    safe before ``start``; usable as a context manager. Not restartable: make a new instance.
    """

    def __init__(self, *, db_path: str | Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self._db_path = db_path
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._stopped = False
        self._url: str | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` once ``start`` has returned. Raises ``RuntimeError`` before."""
        if self._url is None:
            raise RuntimeError("RegistryServer has not been started")
        return self._url

    def start(self, timeout: float = 10.0) -> None:
        """Bind, start serving and return once listening; sets ``url``.

        Raises ``RuntimeError`` if already started or shut down, or if the server fails to
        start within ``timeout`` seconds (the cause is chained); ``StoreError`` if the database
        cannot be opened; ``OSError`` if the address cannot be bound.
        """
        with self._lock:
            if self._thread is not None or self._stopped:
                raise RuntimeError("RegistryServer cannot be started twice")
            app = create_app(self._db_path)
            try:
                sock = _bind(self._host, self._port)
                port = sock.getsockname()[1]
            except BaseException:
                app.state.store.close()
                raise
            try:
                config = uvicorn.Config(
                    app,
                    log_config=None,  # leave the embedding application's logging alone
                    log_level="warning",
                    access_log=False,
                    lifespan="on",
                )
                started = threading.Event()
                server = self._server = _Server(config, started)
                self._thread = threading.Thread(
                    target=self._run, args=(sock,), name="otlp-feedback-registry", daemon=True
                )
                self._thread.start()
            except BaseException:
                sock.close()
                app.state.store.close()
                raise
        if not started.wait(timeout) or not server.started:
            self.shutdown(timeout=1.0)
            raise RuntimeError(f"registry failed to start within {timeout}s") from self._failure
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._url = f"http://{host}:{port}"
        logger.info("schema registry listening on %s (db %s)", self.url, self._db_path)

    def _run(self, sock: socket.socket) -> None:
        assert self._server is not None
        try:
            self._server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit from a failed startup included
            self._failure = exc
            logger.error("schema registry stopped with an error", exc_info=exc)
        finally:
            sock.close()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop serving and wait up to ``timeout`` s for the thread; idempotent."""
        with self._lock:
            self._stopped = True
            server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            # Open connections outlived the timeout: stop waiting for them.
            server.force_exit = True
            thread.join(1.0)

    def __enter__(self) -> RegistryServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


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
