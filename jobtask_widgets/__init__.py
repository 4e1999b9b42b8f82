"""jobtask_widgets: see what a geospatial processing job task produced.

The headless core supplies the documented JobTask API; the widget layer (map, tile layer,
dashboard widget) and plotting load lazily, so ``import jobtask_widgets`` stays light for
scripts and servers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors

if TYPE_CHECKING:
    from .browsersave import BrowserSave, save_to_browser
    from .client import authenticate
    from .jobtask import JobTask, initialize_jobtask, list_jobtasks
    from .stacsource import open_stac
    from .widget import JobTaskWidget

__version__ = "0.1.0"

_LAZY = {
    "BrowserSave": "browsersave",
    "authenticate": "client",
    "JobTask": "jobtask",
    "JobTaskWidget": "widget",
    "initialize_jobtask": "jobtask",
    "list_jobtasks": "jobtask",
    "open_stac": "stacsource",
    "save_to_browser": "browsersave",
}

__all__ = [
    "BrowserSave",
    "JobTask",
    "JobTaskWidget",
    "__version__",
    "authenticate",
    "errors",
    "initialize_jobtask",
    "list_jobtasks",
    "open_stac",
    "save_to_browser",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jobtask_widgets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
