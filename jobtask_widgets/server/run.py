"""Running the server with uvicorn on a socket of our own, so ``port=0`` takes a free port and
the caller learns the real URL once the server listens.

Limits that hold under abuse (issue 13), all set by :func:`make_server`:

- **A deadline for each request's head.** The request line and headers must arrive within
  ``timeout_head`` seconds of the connection opening, or of the previous response on a kept-alive
  connection. A connection that misses it is answered 408 when it had sent part of a head, and
  closed. uvicorn's h11 protocol has no such deadline: its keep-alive timer stops at the first
  byte, and a new connection has no timer at all, so a client trickling a byte at a time (or
  sending nothing) kept its socket for ever.
- **Idle keep-alive connections** are closed after ``timeout_keep_alive`` seconds (uvicorn's own).
- **A bound on connections.** At most ``limit_concurrency`` connections are served at once. A new
  connection beyond it makes room by closing the connection that has waited longest for a head
  (idle or half-sent); when every connection has a request in flight, the new one's request is
  answered 503 in the protocol's error envelope (uvicorn's own 503 is plain text) and closed. So
  open sockets stay within ``limit_concurrency + 1`` once a burst is shed (the backlog bounds a
  burst), and idle ones can never use up the file descriptors; the default limit leaves room
  below the process's open-file limit. A request's body and a slow reader of an answer have no
  deadline here.
- **TCP_NODELAY on every accepted connection.** asyncio sets it only when the listening socket was
  made with ``proto=IPPROTO_TCP``; :func:`bind` does so, and the protocol sets it once more for a
  socket made elsewhere. Without it, every answer on a kept-alive connection waited for the
  client's delayed ACK, about 40 ms (Nagle's algorithm holding the body behind the headers).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from .logs import log_config
from .problems import error_response

TIMEOUT_HEAD = 10.0
"""Seconds for a request's line and headers to arrive (default of ``timeout_head``)."""
TIMEOUT_KEEP_ALIVE = 5
"""Seconds an idle kept-alive connection stays open (default of ``timeout_keep_alive``)."""
LIMIT_CONCURRENCY = 1000
"""The most connections served at once, when the open-file limit allows it."""
BACKLOG = 2048
"""The most connections queued by the kernel before they are accepted, when the limit is higher."""


def default_limit_concurrency() -> int:
    """:data:`LIMIT_CONCURRENCY`, or less when the open-file limit is low.

    Each connection may hold a socket and an open file (a download), and a burst may be accepted
    before the limit sheds it (see ``backlog`` in :func:`make_server`); 64 descriptors are left for
    the rest of the process.

    Returns:
        ``min(1000, (soft RLIMIT_NOFILE - 64) // 2)``, at least 1.
    """
    if sys.platform == "win32":
        return LIMIT_CONCURRENCY
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return LIMIT_CONCURRENCY
    return max(1, min(LIMIT_CONCURRENCY, (soft - 64) // 2))


class _Config(uvicorn.Config):
    """uvicorn's settings, plus the head deadline and the connection bound :class:`_Protocol` reads."""

    def __init__(self, app: FastAPI | str, *, timeout_head: float, max_connections: int, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.timeout_head = timeout_head
        self.max_connections = max_connections


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol with the head deadline, the connection bound and TCP_NODELAY.

    The head timer runs whenever the connection waits for a request's head (h11's client state is
    ``IDLE``): from ``connection_made`` and from the end of each response, until a head has been
    parsed. uvicorn's own concurrency check is switched off, so the 503 is answered in the error
    envelope by :meth:`_within_limit`.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if not isinstance(config, _Config):
            raise TypeError("_Protocol needs the settings of make_server (a _Config)")
        self._timeout_head = config.timeout_head
        self._limit = config.max_connections
        self._app = self.app
        self.app = self._within_limit
        self._head_timer: asyncio.TimerHandle | None = None
        self.waiting_since: float | None = None
        """Loop time since when the connection waits for a head; ``None`` when it does not."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sync_head_timer()
        if len(self.connections) > self._limit:
            self._shed()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._sync_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._sync_head_timer()

    def _sync_head_timer(self) -> None:
        """Run the head timer exactly while the connection waits for a request's head."""
        waiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if waiting and self._head_timer is None:
            self.waiting_since = self.loop.time()
            self._head_timer = self.loop.call_later(self._timeout_head, self._head_timed_out)
        elif not waiting:
            self._stop_head_timer()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = None
        self.waiting_since = None

    def _head_timed_out(self) -> None:
        """Answer 408 when part of a head came, then close; close silently when nothing came."""
        self._head_timer = None
        self.waiting_since = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        partial = bool(self.conn.trailing_data[0])
        self.logger.debug("%s: no request head within %g s; closed", self.client, self._timeout_head)
        with contextlib.suppress(h11.LocalProtocolError):
            if partial:
                message = f"the request's line and headers did not arrive within {self._timeout_head:g} s"
                answer = error_response(408, message, {"Connection": "close"})
                head = h11.Response(status_code=408, headers=answer.raw_headers, reason=b"Request Timeout")
                for event in (head, h11.Data(data=bytes(answer.body)), h11.EndOfMessage()):
                    self.transport.write(self.conn.send(event))
            else:
                self.conn.send(h11.ConnectionClosed())
        self.transport.close()

    def _shed(self) -> None:
        """Beyond the limit: close the other connection that has waited longest for a head, if any."""
        waiting = {c: c.waiting_since for c in self.connections if isinstance(c, _Protocol) and c is not self}
        since = {c: t for c, t in waiting.items() if t is not None}
        if since:
            oldest = min(since, key=since.__getitem__)
            self.logger.debug("%s: closed to make room within %d connections", oldest.client, self._limit)
            oldest._stop_head_timer()
            self.connections.discard(oldest)  # now, not once asyncio calls connection_lost
            oldest.transport.abort()

    async def _within_limit(self, scope: Any, receive: Any, send: Any) -> None:
        """The app, or a 503 in the envelope while more connections or requests than the limit are open."""
        if len(self.connections) > self._limit or len(self.tasks) > self._limit:
            message = f"the server is at its limit of {self._limit} connections served at once; try again shortly"
            await error_response(503, message, {"Connection": "close", "Retry-After": "1"})(scope, receive, send)
        else:
            await self._app(scope, receive, send)


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
    It is made with ``proto=IPPROTO_TCP``, so asyncio sets ``TCP_NODELAY`` on the connections it
    accepts (with ``proto=0`` it does not).

    Args:
        host: The address.
        port: The port; ``0`` for a free one.
        fallback: Take a free port when ``port`` is taken, instead of raising.

    Raises:
        OSError: when the address cannot be bound (e.g. the port is taken and no fallback).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for attempt in (port, 0) if fallback and port else (port,):
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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
    app: FastAPI | str,
    sock: socket.socket,
    *,
    on_listening: Callable[[], None] | None = None,
    log_level: str = "warning",
    timeout_head: float = TIMEOUT_HEAD,
    timeout_keep_alive: int = TIMEOUT_KEEP_ALIVE,
    limit_concurrency: int | None = None,
    backlog: int | None = None,
    log_format: str = "text",
    workers: int = 1,
) -> uvicorn.Server:
    """A uvicorn server for ``app`` on ``sock``; run it with ``server.run(sockets=[sock])``.

    Args:
        app: The app to serve.
        sock: The socket it will serve on (from :func:`bind`).
        on_listening: Called once the server listens.
        log_level: uvicorn's log level; ``"info"`` and ``"debug"`` log every request (``accesslog.py``).
        log_format: ``"text"`` or ``"json"`` (one JSON object per line, for a log collector).
        workers: Worker processes (:func:`run_workers`); more than one needs ``app`` as the import
            string of an app factory (``"jobtask_widgets.server.app:app_from_environment"``).
        timeout_head: Seconds for a request's line and headers to arrive, from the connection's
            start or the end of the previous response; then 408 (or, when nothing came, a close).
        timeout_keep_alive: Seconds an idle kept-alive connection stays open.
        limit_concurrency: The most connections served at once; beyond it the connection that
            has waited longest for a head is closed, or, when none waits, the request is answered
            503. ``None``: :func:`default_limit_concurrency`.
        backlog: Connections the kernel queues before they are accepted (Linux caps it at
            ``net.core.somaxconn``); asyncio also accepts up to this many in one go, before the
            limit sheds any. ``None``: ``min(2048, limit_concurrency)``, so a burst cannot take
            more than twice the limit in file descriptors, even for an instant.

    Raises:
        ValueError: when a timeout, the limit or the backlog is not positive.
    """
    limit = default_limit_concurrency() if limit_concurrency is None else limit_concurrency
    backlog = min(BACKLOG, limit) if backlog is None else backlog
    if min(timeout_head, timeout_keep_alive, limit, backlog) <= 0:
        raise ValueError("timeout_head, timeout_keep_alive, limit_concurrency and backlog must be positive")
    config = _Config(
        app,
        timeout_head=timeout_head,
        max_connections=limit,
        http=_Protocol,
        log_level=log_level,
        # uvicorn's own, secrets redacted; requests logged by our access log, uvicorn's is off
        log_config=log_config(log_format, access=log_level in {"info", "debug"}, level=log_level),
        lifespan="off",
        access_log=False,
        factory=isinstance(app, str),
        workers=workers,
        timeout_keep_alive=timeout_keep_alive,
        backlog=backlog,
    )
    return _Server(config, on_listening)


def run_workers(server: uvicorn.Server, sock: socket.socket, on_listening: Callable[[], None] | None = None) -> None:
    """Serve with ``server.config.workers`` processes on ``sock`` (uvicorn's supervisor: it restarts a
    worker that dies and stops them all on Ctrl-C); returns when they have stopped.

    The socket listens before the workers start, so connections wait in its backlog meanwhile
    rather than being refused; ``on_listening`` is called then.
    """
    from uvicorn.supervisors import Multiprocess

    sock.listen(server.config.backlog)
    if on_listening is not None:
        on_listening()
    Multiprocess(server.config, sockets=[sock]).run()


class BackgroundServer:
    """The server in a daemon thread, for tests, notebooks and the demo.

    Args:
        app: The app to serve.
        host: The address to listen on.
        port: The port, ``0`` for a free one.
        sock: A socket from :func:`bind` to serve on instead of ``host`` and ``port``.
        log_level: uvicorn's log level.
        timeout_head: Seconds for a request's line and headers to arrive (see :func:`make_server`).
        timeout_keep_alive: Seconds an idle kept-alive connection stays open.
        limit_concurrency: The most connections served at once; ``None`` for the default.
        backlog: Connections the kernel queues before they are accepted; ``None`` for the default.
    """

    def __init__(
        self,
        app: FastAPI,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        log_level: str = "warning",
        timeout_head: float = TIMEOUT_HEAD,
        timeout_keep_alive: int = TIMEOUT_KEEP_ALIVE,
        limit_concurrency: int | None = None,
        backlog: int | None = None,
    ) -> None:
        self._sock = sock if sock is not None else bind(host, port)
        self.url = url_of(self._sock)
        self._ready = threading.Event()
        self._server = make_server(
            app,
            self._sock,
            on_listening=self._ready.set,
            log_level=log_level,
            timeout_head=timeout_head,
            timeout_keep_alive=timeout_keep_alive,
            limit_concurrency=limit_concurrency,
            backlog=backlog,
        )
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
