"""The errors of the server's store, which know nothing of HTTP.

The store raises :class:`NotInStore` for a name it does not hold and
:class:`jobtask_widgets.errors.StoreError` for a folder that breaks the layout; the app's one
table (``problems.ERROR_STATUS``) turns them into 404 and 500 answers (docs/architecture.md,
"Errors").

A store in object storage that cannot be read (down, or refusing the server's credentials)
raises :class:`StoreUnreachable`, a 503.

An archive build that keeps meeting an output that changes under it gives up with
:class:`OutputChanging`, a 503: the client asks again later.
"""

from __future__ import annotations

from ..errors import StoreError


class NotInStore(LookupError):
    """A project, job, task, file or quicklook that the store does not hold.

    Malformed ids and names, and paths that would leave the store root, are reported the same
    way: the client learns only that there is no such thing.

    Args:
        message: What was asked for, e.g. ``"unknown task 'x' in job 'y'"``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OutputChanging(RuntimeError):
    """A task's output kept changing while its archive was built: ask again once it is complete.

    Args:
        message: Which task, and how many builds were tried.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StoreUnreachable(StoreError):
    """Object storage that cannot be read now (unreachable, or refusing the server's credentials).

    Args:
        message: Which store, and its own message.
    """


__all__ = ["NotInStore", "OutputChanging", "StoreUnreachable"]
