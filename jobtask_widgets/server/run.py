"""Running the server with uvicorn on a socket of our own, so ``port=0`` takes a free port and
the caller learns the real URL once the server listens."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI


class _Server(uvicorn.Server):
    """A uvicorn server that calls back once its sockets listen."""

    def __init__(self, config: uvicorn.Config, on_listening: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_listening is not None:
            self._on_listening()


def bind(host: str = "127.0.0.1", port: int = 8042, *, fallback: bool = False) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (``port=0`` takes a free one).

    The socket stays bound, so nobody can take the port between this call and the server's start.

    Args:
        host: The address.
        port: The port; ``0`` for a free one.
        fallback: Take a free port when ``port`` is taken, instead of raising.

    Raises:
        OSError: when the address cannot be bound (e.g. the port is taken and no fallback).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for attempt in (port, 0) if fallback and port else (port,):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, attempt))
        except OSError:
            sock.close()
            if attempt == 0 or not fallback:
                raise
            continue
        sock.set_inheritable(True)
        return sock
    raise OSError(f"no free port on {host}")  # not reached: the last attempt raises


def free_port(host: str = "127.0.0.1", wanted: int = 0) -> int:
    """``wanted`` when it is free now, else a port that is free now (``0``: any free one).

    Only for a child process that binds by itself and moves to another port when this one is
    taken meanwhile (Voila does); a server of ours keeps the socket of :func:`bind` instead.
    """
    with bind(host, wanted, fallback=True) as sock:
        return int(sock.getsockname()[1])


def url_of(sock: socket.socket) -> str:
    """The ``http://host:port`` URL of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def make_server(
    app: FastAPI, sock: socket.socket, *, on_listening: Callable[[], None] | None = None, log_level: str = "warning"
) -> uvicorn.Server:
    """A uvicorn server for ``app`` on ``sock``; run it with ``server.run(sockets=[sock])``."""
    config = uvicorn.Config(app, log_level=log_level, lifespan="off", access_log=log_level in {"info", "debug"})
    return _Server(config, on_listening)


class BackgroundServer:
    """The server in a daemon thread, for tests, notebooks and the demo.

    Args:
        app: The app to serve.
        host: The address to listen on.
        port: The port, ``0`` for a free one.
        sock: A socket from :func:`bind` to serve on instead of ``host`` and ``port``.
    """

    def __init__(
        self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, *, sock: socket.socket | None = None, **kwargs: Any
    ) -> None:
        self._sock = sock if sock is not None else bind(host, port)
        self.url = url_of(self._sock)
        self._ready = threading.Event()
        self._server = make_server(app, self._sock, on_listening=self._ready.set, **kwargs)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        """Start serving; return once the server listens."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the server at {self.url} did not start within {timeout} s")
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
