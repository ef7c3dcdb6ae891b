"""Serve an ASGI app with uvicorn on a background thread (registry, metrics and health, OTLP/HTTP).

The listening socket is bound here, before uvicorn starts, so ``port=0`` picks a free port with
no window in which another process could take it, and ``url`` and ``port`` are known before
``start`` returns.
Lifecycle: ``start`` returns once connections are accepted; ``shutdown`` is idempotent and safe
before ``start``; usable as a context manager. Not restartable: make a new instance.
``ssl`` serves TLS with the caller's context (which may swap certificates per handshake);
``reuse_port`` lets several processes share the port (SO_REUSEPORT), as the gRPC port does.
"""

from __future__ import annotations

import logging
import socket
import ssl as ssl_module
import threading
from types import TracebackType
from typing import Any, Self

import uvicorn

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


class BackgroundHttpServer:
    """One ASGI app on ``host:port`` in a daemon thread named ``name``."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str,
        ssl: ssl_module.SSLContext | None = None,
        reuse_port: bool = False,
    ) -> None:
        self._app = app
        self._ssl = ssl
        self._reuse_port = reuse_port
        self._host = host
        self._port = port
        self._name = name
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._stopped = False
        self._url: str | None = None
        self.port: int | None = None  # the bound port, once ``start`` has returned

    @property
    def url(self) -> str:
        """``http://host:port`` once ``start`` has returned. Raises ``RuntimeError`` before."""
        if self._url is None:
            raise RuntimeError(f"{self._name} has not been started")
        return self._url

    def start(self, timeout: float = 10.0) -> None:
        """Bind, serve, return once listening. Raises ``OSError`` if the address cannot be
        bound, ``RuntimeError`` if started twice or not up within ``timeout``."""
        with self._lock:
            if self._thread is not None or self._stopped:
                raise RuntimeError(f"{self._name} cannot be started twice")
            sock = _bind(self._host, self._port, self._reuse_port)
            port = sock.getsockname()[1]
            try:
                config = uvicorn.Config(
                    self._app,
                    log_config=None,  # leave the embedding application's logging alone
                    log_level="warning",
                    access_log=False,
                    lifespan="on",
                    ssl_context_factory=None if self._ssl is None else self._ssl_context,
                )
                started = threading.Event()
                server = self._server = _Server(config, started)
                self._thread = threading.Thread(
                    target=self._run, args=(sock,), name=self._name, daemon=True
                )
                self._thread.start()
            except BaseException:
                sock.close()
                raise
        if not started.wait(timeout) or not server.started:
            self.shutdown(timeout=1.0)
            raise RuntimeError(f"{self._name} failed to start within {timeout}s") from self._failure
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._url = f"{'https' if self._ssl else 'http'}://{host}:{port}"
        self.port = port

    def _ssl_context(self, config: uvicorn.Config, default: Any) -> ssl_module.SSLContext:
        assert self._ssl is not None
        return self._ssl

    def _run(self, sock: socket.socket) -> None:
        assert self._server is not None
        try:
            self._server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit from a failed startup included
            self._failure = exc
            logger.error("%s stopped with an error", self._name, exc_info=exc)
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

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()


def _bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock
