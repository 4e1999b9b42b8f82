"""jobtask_widgets: see what a geospatial processing job task produced.

The headless core supplies the documented JobTask API; the widget layer (map, tile layer,
dashboard widget) and plotting load lazily, so ``import jobtask_widgets`` stays light for
scripts and servers.
"""

from __future__ import annotations

from . import errors

__version__ = "0.1.0"

__all__ = ["__version__", "errors"]
