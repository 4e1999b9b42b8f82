"""Reading a JSON object from a small file (credentials, settings, task metadata)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``.

    Raises:
        FileNotFoundError: when there is no such file.
        ValueError: when it cannot be read, is not JSON, or holds something else than an object;
            the message says which.
    """
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot be read: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"holds a {type(value).__name__}, not a JSON object")
    return value
