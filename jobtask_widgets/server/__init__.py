"""The reference job-task server: the HTTP API of DESIGN.md over a folder of results.

Build the app with :func:`create_app`; run it with ``jobtask-widgets serve ROOT`` or, inside a
process, with :class:`BackgroundServer`.
"""

from .app import create_app
from .run import BackgroundServer

__all__ = ["BackgroundServer", "create_app"]
