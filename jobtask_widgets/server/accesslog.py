"""The access log: one line per request a team can read, or one JSON object per line for a collector.

Each line says who asked (the client's address, and the token's subject when a bearer token was
accepted: ``project:ID`` or ``user:NAME``; ``signed`` for a signed URL; ``-`` otherwise), what
(method, path and query, secrets ``REDACTED`` as in ``logs.redact``), the status, the body's bytes
and the time to the last byte. Text::

    127.0.0.1 user:alice "GET /projects/p/jobs/j/tasks/ HTTP/1.1" 200 1234 B 3.1 ms

``--log-format json``: ``{"time", "client", "subject", "method", "path", "protocol", "status",
"bytes", "ms"}``. It is an ASGI middleware around the app; uvicorn's own access log is off.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

from .logs import redact

ACCESS_LOGGER = "jobtask_widgets.access"
FORMATS = ("text", "json")
SUBJECT = "jobtask_subject"  # the key in the ASGI scope's state where a route says who asked

log = logging.getLogger(ACCESS_LOGGER)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


class AccessLog:
    """Logs one record per HTTP request to ``jobtask_widgets.access`` (its ``extra`` holds the fields)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answer = {"status": 500, "bytes": 0}

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = int(message["status"])
            elif message["type"] == "http.response.body":
                answer["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            if log.isEnabledFor(logging.INFO):
                query = scope.get("query_string", b"").decode("latin-1")
                path = scope.get("path", "") + (f"?{query}" if query else "")
                client = scope.get("client") or ("-", 0)
                fields = {
                    "client": str(client[0]),
                    "subject": str((scope.get("state") or {}).get(SUBJECT, "-")),
                    "method": scope.get("method", "-"),
                    "path": redact(path),
                    "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
                    "status": answer["status"],
                    "bytes": answer["bytes"],
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                }
                log.info("%s", text_line(fields), extra={"access": fields})


def text_line(fields: dict[str, Any]) -> str:
    """One request as a line of text."""
    return (
        f'{fields["client"]} {fields["subject"]} "{fields["method"]} {fields["path"]} {fields["protocol"]}" '
        f"{fields['status']} {fields['bytes']} B {fields['ms']} ms"
    )


class JsonFormatter(logging.Formatter):
    """An access record as one JSON object (other records: their message, with the time and level)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        fields = getattr(record, "access", None)
        if isinstance(fields, dict):
            return json.dumps({"time": stamp, **fields}, ensure_ascii=False)
        return json.dumps({"time": stamp, "level": record.levelname, "message": redact(record.getMessage())})


def mark_subject(scope: Scope, subject: str) -> None:
    """Say who asked, for the access log (from a dependency: ``request.scope``)."""
    scope.setdefault("state", {})[SUBJECT] = subject
