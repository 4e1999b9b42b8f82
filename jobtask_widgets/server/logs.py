"""The server's logging: uvicorn's own configuration, with secrets redacted from the access log.

A signed download URL opens its archive for anyone until it expires, so its ``signature`` is a
secret for that long; an access token or a password in a query string (a client that puts
them there by mistake) is one for longer. The access log records every request line, so
:class:`RedactSecrets` replaces the values of :data:`SECRET_PARAMETERS` in it with
``REDACTED`` before any handler sees the record. Credentials travel in headers and bodies,
which uvicorn never logs.
"""

from __future__ import annotations

import copy
from typing import Any

import uvicorn.config

from ..redaction import SECRET_PARAMETERS, RedactSecrets, redact

SERVER_LOGGER = "jobtask_widgets.server"
"""The logger of the server's own warnings."""


def log_config(log_format: str = "text", *, access: bool = True, level: str = "info") -> dict[str, Any]:
    """uvicorn's default logging configuration, with :class:`RedactSecrets` on its access logger,
    :data:`SERVER_LOGGER` printed like uvicorn's own messages, and our access log
    (``accesslog.py``) one line per request (when ``access``), as text or (``log_format="json"``) JSON."""
    if log_format not in ("text", "json"):
        raise ValueError(f"log_format must be 'text' or 'json' (got {log_format!r})")
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_secrets"] = {"()": "jobtask_widgets.redaction.RedactSecrets"}
    config["loggers"]["uvicorn.access"]["filters"] = ["redact_secrets"]
    # the server's own warnings (a readable credentials file, a file rewritten while sent) in
    # uvicorn's format, not bare lines from logging's last-resort handler
    server_level = "INFO" if level.lower() in ("info", "debug") else level.upper()  # --log-level warning: quiet
    config["loggers"][SERVER_LOGGER] = {"handlers": ["default"], "level": server_level, "propagate": False}
    config["formatters"]["jobtask_access"] = (
        {"()": "jobtask_widgets.server.accesslog.JsonFormatter"} if log_format == "json" else {"format": "%(message)s"}
    )
    config["handlers"]["jobtask_access"] = {
        "formatter": "jobtask_access", "class": "logging.StreamHandler", "stream": "ext://sys.stdout",
    }  # fmt: skip
    level = "INFO" if access else "WARNING"
    config["loggers"]["jobtask_widgets.access"] = {"handlers": ["jobtask_access"], "level": level, "propagate": False}
    if log_format == "json":  # every line a JSON object, uvicorn's and the server's own too
        config["handlers"]["default"]["formatter"] = "jobtask_access"
    return config


__all__ = ["SECRET_PARAMETERS", "SERVER_LOGGER", "RedactSecrets", "log_config", "redact"]
