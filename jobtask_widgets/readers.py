"""ThreadReaders: one rio-tiler ``Reader`` per thread and per file, and closing them safely.

Tiles render in a thread pool, and a GDAL dataset must not be shared between threads, so a raster
source keeps one reader per thread for each file it reads (the file shown, through its overviews,
and the raster itself, for pixel values). A reader in use is never closed under its read:
:meth:`ThreadReaders.drop` closes the idle readers and leaves each busy one to the read that
holds it, which closes it on its way out (closing a dataset under a running read crashes GDAL).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rio_tiler.io import Reader

from .errors import RasterError


class ThreadReaders:
    """The readers of one raster source, by thread and file.

    Args:
        open_reader: Opens a reader of a file (the source's GDAL settings around it).
        label: How errors name the raster.
    """

    def __init__(self, open_reader: Callable[[str], Reader], label: Callable[[], str]) -> None:
        self._open = open_reader
        self._label = label
        self._lock = threading.Lock()
        self.readers: dict[tuple[int, str], Reader] = {}  # by thread ident and file; these three under _lock
        self.busy: dict[int, int] = {}  # reads running, by thread ident
        self.leftover: dict[int, list[Reader]] = {}  # readers dropped while their thread read
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        """Whether :meth:`drop` closed them for good."""
        return self._closed.is_set()

    @property
    def closed_event(self) -> threading.Event:
        """Set when the readers are closed for good (a cancel signal for work on the source's behalf)."""
        return self._closed

    @contextmanager
    def using(self, path: str) -> Iterator[Reader]:
        """This thread's reader of ``path`` (opened on first use), held while the block runs.

        Raises:
            RasterError: when the readers were closed for good.
        """
        thread = threading.get_ident()
        with self._lock:
            if self._closed.is_set():
                raise RasterError(f"{self._label()}: the raster source is closed")
            reader = self.readers.get((thread, path))
            self.busy[thread] = self.busy.get(thread, 0) + 1
        try:
            if reader is None:
                reader = self._open(path)
                with self._lock:
                    if self._closed.is_set() or (thread, path) in self.readers:
                        self.leftover.setdefault(thread, []).append(reader)  # it goes with this read
                    else:
                        self.readers[(thread, path)] = reader
            yield reader
        finally:
            self._release(thread)

    def _release(self, thread: int) -> None:
        with self._lock:
            self.busy[thread] -= 1
            if self.busy[thread]:
                return
            del self.busy[thread]
            leftover = self.leftover.pop(thread, [])
        for reader in leftover:  # dropped while this thread read
            reader.close()  # type: ignore[no-untyped-call]  # rio-tiler's Reader.close has no annotations

    def drop(self, *, closing: bool = False) -> None:
        """Close every reader: the idle ones now, each busy one as its read ends.

        Args:
            closing: Also close for good (under the same lock), so no reader opens again.
        """
        with self._lock:
            if closing:
                self._closed.set()
            idle = [r for (thread, _), r in self.readers.items() if thread not in self.busy]
            for (thread, _), reader in self.readers.items():
                if thread in self.busy:
                    self.leftover.setdefault(thread, []).append(reader)
            self.readers = {}
        for reader in idle:
            reader.close()  # type: ignore[no-untyped-call]  # rio-tiler's Reader.close has no annotations
