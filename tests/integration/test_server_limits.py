"""The server's timeouts and limits under abuse, over real sockets (issue 13, point 5): heads that
trickle in, idle and stalled kept-alive connections, connections beyond the limit, and
TCP_NODELAY, seen as the latency of a kept-alive connection.

Every wait is a bounded poll; the only time compared is a ratio of two latencies measured side by
side, and a lower bound that says a deadline was not cut short.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from jobtask_widgets.sample import Sample
from jobtask_widgets.server import BackgroundServer, create_app
from tests.helpers import SECRET, Api, error_of, token_for

WAIT = 15.0  # a generous bound for what should take about a second


@contextlib.contextmanager
def serving(sample: Sample, tmp_path: Path, **limits: Any) -> Iterator[tuple[tuple[str, int], dict[str, str]]]:
    """A server of the test's own with ``limits``; its address and an Authorization header."""
    app = create_app(sample.root, secret=SECRET, cache_dir=tmp_path / "cache")
    with BackgroundServer(app, **limits) as server:
        parts = urlsplit(server.url)
        assert parts.hostname and parts.port
        yield (parts.hostname, parts.port), {"Authorization": f"Bearer {token_for(server.url, sample)}"}


def tasks_path(sample: Sample) -> str:
    return f"/projects/{sample.project_id}/jobs/{sample.job_id}/tasks/"


def listed(sample: Sample, address: tuple[str, int], auth: dict[str, str]) -> requests.Response:
    """The task listing through ``requests``, checked to be the right answer."""
    answer = requests.get(f"http://{address[0]}:{address[1]}{tasks_path(sample)}", headers=auth, timeout=10)
    if answer.status_code == 200:
        assert [task["id"] for task in answer.json()["data"]] == sorted(sample.task_ids)
    return answer


def closed_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent on ``sock`` before closing it, or ``None`` while it is still open after
    ``seconds``. A reset counts as closed (the server closed with the client's bytes unread)."""
    deadline = time.monotonic() + seconds
    got = b""
    while True:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return None
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return got
        if not chunk:
            return got
        got += chunk


def answer_of(raw: bytes) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of a raw HTTP answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def assert_request_timeout(raw: bytes) -> None:
    status, body = answer_of(raw)
    assert status == 408, raw
    assert body["data"] is None
    assert body["error"]["code"] == "REQUEST_TIMEOUT"
    assert "did not arrive within" in body["error"]["message"]
    assert b"\r\nconnection: close\r\n" in raw.lower()


def test_half_sent_heads_are_cut_off_at_the_deadline_while_other_clients_are_served(
    sample: Sample, tmp_path: Path
) -> None:
    deadline = 1.0
    limits = {"timeout_head": deadline, "limit_concurrency": 200}  # room for all 55: none is shed
    with serving(sample, tmp_path, **limits) as (address, auth), contextlib.ExitStack() as stack:
        head = f"GET {tasks_path(sample)} HTTP/1.1\r\nHost: x\r\nX-Slow: {'a' * 200}\r\n\r\n".encode()
        started = time.monotonic()
        tricklers = [stack.enter_context(socket.create_connection(address, timeout=5)) for _ in range(50)]
        silent = [stack.enter_context(socket.create_connection(address, timeout=5)) for _ in range(5)]
        ended: dict[socket.socket, tuple[float, bytes]] = {}
        statuses: list[int] = []
        sent = 0
        while len(ended) < len(tricklers) + len(silent) and time.monotonic() - started < deadline + WAIT:
            for sock in tricklers:  # one more byte of the head, about every 0.3 s
                if sock not in ended:
                    try:
                        sock.send(head[sent : sent + 1])
                    except OSError:  # reset: the server has closed it
                        ended[sock] = (time.monotonic() - started, b"")
            sent += 1
            statuses.append(listed(sample, address, auth).status_code)  # a normal client meanwhile
            open_ = [sock for sock in tricklers + silent if sock not in ended]
            ready, _, _ = select.select(open_, [], [], 0.3)
            for sock in ready:
                raw = closed_within(sock, WAIT)
                assert raw is not None
                ended[sock] = (time.monotonic() - started, raw)
        assert len(ended) == len(tricklers) + len(silent), f"{len(ended)} of 55 slow connections were closed"
        assert statuses and set(statuses) == {200}, statuses
        assert sent < len(head)  # none had finished its head
        assert min(at for at, _ in ended.values()) >= 0.9 * deadline  # the deadline, not sooner
        for sock in silent:
            assert ended[sock][1] == b""  # nothing came, nothing is answered
        answered = [raw for sock in tricklers if (raw := ended[sock][1])]
        for raw in answered:
            assert_request_timeout(raw)
        assert answered, "no trickler read its 408"
        assert listed(sample, address, auth).status_code == 200


def test_kept_alive_connections_are_closed_when_idle_and_when_their_next_head_stalls(
    sample: Sample, tmp_path: Path
) -> None:
    # idle after an answer: closed by the keep-alive timeout, long before the 60 s head deadline
    with (
        serving(sample, tmp_path, timeout_keep_alive=1, timeout_head=60) as (address, auth),
        contextlib.closing(http.client.HTTPConnection(*address, timeout=10)) as conn,
    ):
        conn.request("GET", tasks_path(sample), headers=auth)
        answer = conn.getresponse()
        assert answer.status == 200 and answer.getheader("connection") is None
        answer.read()
        assert conn.sock is not None
        assert closed_within(conn.sock, WAIT) == b""
    # a next request that starts and stalls: uvicorn's keep-alive timer stops at its first byte,
    # so only the head deadline, restarted after every answer, closes it
    with (
        serving(sample, tmp_path, timeout_keep_alive=60, timeout_head=1) as (address, auth),
        contextlib.closing(http.client.HTTPConnection(*address, timeout=10)) as conn,
    ):
        for _ in range(2):  # the deadline does not cut off a connection that keeps asking
            conn.request("GET", tasks_path(sample), headers=auth)
            answer = conn.getresponse()
            assert answer.status == 200
            answer.read()
        assert conn.sock is not None
        conn.sock.sendall(b"GET / HT")
        raw = closed_within(conn.sock, WAIT)
        assert raw is not None, "a stalled head on a kept-alive connection was never timed out"
        assert_request_timeout(raw)


def read_head(sock: socket.socket) -> bytes:
    """Read up to the end of one answer's head."""
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = sock.recv(4096)
        assert chunk, got
        got += chunk
    return got


def test_beyond_the_limit_a_request_gets_a_503_envelope_and_service_resumes(sample: Sample, tmp_path: Path) -> None:
    limit = 3
    form = b"grant_type=client_credentials"
    upload = (
        "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(form)}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    with serving(sample, tmp_path, limit_concurrency=limit, timeout_head=60) as (address, auth):
        with contextlib.ExitStack() as stack:
            busy = [stack.enter_context(socket.create_connection(address, timeout=10)) for _ in range(limit)]
            for sock in busy:  # a request in flight on each: the app waits for the body it was promised
                sock.sendall(upload)
                head = read_head(sock)
                assert head.startswith(b"HTTP/1.1 100 "), head
            answer = listed(sample, address, auth)
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"] == "application/json"
            assert answer.headers["connection"] == "close"
            assert answer.headers["retry-after"] == "1"
            error = error_of(answer)
            assert error["code"] == "SERVICE_UNAVAILABLE"
            assert f"limit of {limit} connections" in error["message"]
            for sock in busy:  # the requests in flight were not disturbed: they finish normally
                sock.sendall(form)
                assert read_head(sock).startswith(b"HTTP/1.1 401 ")  # no client credentials given
        until = time.monotonic() + WAIT
        while (answer := listed(sample, address, auth)).status_code == 503 and time.monotonic() < until:
            time.sleep(0.05)
        assert answer.status_code == 200


def test_idle_connections_beyond_the_limit_are_shed_oldest_first_and_requests_still_served(
    sample: Sample, tmp_path: Path
) -> None:
    limit = 5
    with (
        serving(sample, tmp_path, limit_concurrency=limit, timeout_head=60) as (address, auth),
        contextlib.ExitStack() as stack,
    ):
        idle = [stack.enter_context(socket.create_connection(address, timeout=10)) for _ in range(40)]
        closed: set[socket.socket] = set()
        until = time.monotonic() + WAIT  # far below the 60 s head deadline: shedding closes them
        while len(closed) < len(idle) - limit and time.monotonic() < until:
            closed |= {sock for sock in idle if sock not in closed and closed_within(sock, 0) is not None}
            time.sleep(0.05)
        assert [sock for sock in idle if sock not in closed] == idle[-limit:], f"{len(closed)} of 40 closed"
        assert listed(sample, address, auth).status_code == 200  # not 503: idle sockets make room


def test_answers_on_a_kept_alive_connection_are_as_quick_as_on_new_connections(api: Api) -> None:
    parts = urlsplit(api.url)
    assert parts.hostname and parts.port
    path = urlsplit(api.job).path + "/tasks/"
    headers = {"Authorization": str(api.session.headers["Authorization"])}

    def timed(conn: http.client.HTTPConnection) -> float:
        start = time.perf_counter()
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        assert answer.status == 200
        assert json.loads(answer.read())["error"] is None
        return time.perf_counter() - start

    kept, fresh = [], []
    with contextlib.closing(http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)) as conn:
        timed(conn)  # connects
        for _ in range(25):  # interleaved, so noise hits both alike
            kept.append(timed(conn))
            with contextlib.closing(http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)) as new:
                fresh.append(timed(new))
    # Nagle's algorithm without TCP_NODELAY holds each body behind its headers until the client's
    # delayed ACK: about 40 ms on a kept-alive connection, against ~2 ms for a new one
    ratio = statistics.median(kept) / statistics.median(fresh)
    assert ratio <= 3, f"kept-alive {statistics.median(kept) * 1e3:.1f} ms, new {statistics.median(fresh) * 1e3:.1f} ms"
