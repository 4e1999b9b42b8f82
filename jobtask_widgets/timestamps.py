"""Reading the ISO 8601 times of task metadata (``startedAt``, ``finishedAt``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (``Z`` accepted), or ``None`` when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


__all__ = ["parse_time"]
