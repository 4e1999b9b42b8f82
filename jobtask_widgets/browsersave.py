"""BrowserSave: files from the kernel saved by the user's own browser, sent over the widget channel.

In a Voila dashboard, on JupyterHub or with a remote kernel, files the kernel downloaded sit on
the kernel's disk; this widget lets the person at the browser keep them. The front end
(``js/browsersave.js``, a plain ES module shipped in this package) shows one link per entry
(one file, or several as one ZIP) with progress and Cancel, and drives the transfer:

- browser → kernel: ``{"kind": "start", "id", "entry"}``, then ``{"kind": "next", "id", "seq"}``
  for each chunk (at most a few asked for and not yet written: flow control by the browser; each
  ask is a credit for the next chunk, so asks that arrive out of order do no harm),
  ``{"kind": "saved", "id", "size"}`` once written, ``{"kind": "cancel", "id"}``;
- kernel → browser: ``{"kind": "begin", "id", "filename", "total"}``, ``{"kind": "chunk", "id",
  "seq"}`` with the bytes (2 MiB) as the message's one buffer (the browser writes chunks in
  ``seq`` order, whatever order they arrive in), ``{"kind": "end", "id",
  "seq", "size"}`` when no chunk is left (``seq`` is the number of chunks), ``{"kind": "error",
  "id", "message"}`` (a file changed or vanished: the transfer ends) and ``{"kind": "cancel",
  "id"}`` when the kernel's side cancels.

The kernel reads a chunk only when the browser asks for one (:class:`~.savestream.SaveStream`),
so it never holds more than a chunk, whatever the size; a ZIP is built while it is sent. The
browser writes through the File System Access API when it has it and the user just clicked
(streamed to disk), else keeps the chunks and saves them as one ``Blob`` through a download link.
Either way the saved file has the entry's file name.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from .errors import SaveError
from .plaintext import WHERE, PlainTextRepr
from .savestream import SaveStream, plan
from .taskinfo import size_text

# The message kinds of the save protocol. The front end names them in js/browsersave.js (KINDS);
# tests/unit/test_browsersave.py checks that both sides agree.
KINDS = {
    "START": "start",
    "BEGIN": "begin",
    "NEXT": "next",
    "CHUNK": "chunk",
    "END": "end",
    "SAVED": "saved",
    "CANCEL": "cancel",
    "ERROR": "error",
}

ESM = Path(__file__).parent / "js" / "browsersave.js"
PROGRESS_BYTES = 8 << 20  # the kernel's progress (``sent``) moves in steps of this many bytes
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Entry:
    """One thing to save: its files, the saved file's name and the link's label."""

    paths: tuple[Path, ...]
    filename: str
    label: str
    base: Path | None = None

    @property
    def as_zip(self) -> bool:
        """Whether the files go as one ZIP (several files) or one file as it is."""
        return len(self.paths) > 1

    def describe(self) -> dict[str, Any]:
        size = sum(p.stat().st_size for p in self.paths if p.is_file())
        return {"label": self.label, "filename": self.filename, "size": size, "files": len(self.paths)}


class BrowserSave(PlainTextRepr, anywidget.AnyWidget):
    """Links that save kernel files on the user's computer, through the browser.

    Args:
        paths: The files of the first entry (``None``: no entry yet; see :meth:`set_entries`).
        filename: The saved file's name; default the file's own name, or ``files.zip`` for several.
        base: The folder a ZIP's member names are relative to; default the files' common folder.
        autostart: Whether the first entry is saved as soon as the widget is displayed.
        title: The text before the links.
    """

    _esm = ESM
    key = t.Unicode().tag(sync=True)  # names the model's save state in the page (views come and go)
    title = t.Unicode("Save to my computer:").tag(sync=True)
    entries = t.List(t.Dict(), default_value=[]).tag(sync=True)
    autostart = t.Bool(False).tag(sync=True)
    status = t.Unicode("ready").tag(sync=True)  # ready, sending, saved, cancelled, error
    message = t.Unicode("").tag(sync=True)
    current = t.Int(-1).tag(sync=True)  # the entry being sent
    sent = t.Int(0).tag(sync=True)  # file bytes the kernel has sent of it
    total = t.Int(0).tag(sync=True)  # file bytes it holds
    received = t.Int(0, read_only=True).tag(sync=True)  # bytes the browser has written
    method = t.Unicode("", read_only=True).tag(sync=True)  # "file-system-access" or "download"

    def __init__(
        self,
        paths: Iterable[PathLike] | PathLike | None = None,
        filename: str | None = None,
        *,
        base: PathLike | None = None,
        autostart: bool = False,
        title: str = "Save to my computer:",
    ) -> None:
        self._entries: list[Entry] = []
        self._stream: SaveStream | None = None
        self._transfer: str | None = None
        self._expected = 0
        super().__init__(key=uuid.uuid4().hex, autostart=autostart, title=title)
        if paths is not None:
            self.set_entries([entry(paths, filename, base=base)])
        self.on_msg(self._on_msg)

    def set_entries(self, entries: Sequence[Entry]) -> None:
        """Show these entries (a running save is cancelled first)."""
        self.cancel()
        self._entries = list(entries)
        self.entries = [e.describe() for e in self._entries]

    # -- the protocol ------------------------------------------------------------------------------
    def _on_msg(self, _: Any, content: Any, buffers: list[bytes]) -> None:
        if not isinstance(content, dict):
            return
        kind, transfer = content.get("kind"), str(content.get("id"))
        if kind == KINDS["START"]:
            self._start(transfer, content.get("entry"))
        elif transfer != self._transfer:
            return  # an old transfer's message: it is over
        elif kind == KINDS["NEXT"]:
            self._next(transfer, content.get("seq"))
        elif kind == KINDS["SAVED"]:
            self._finish("saved", f"Saved {self.entries[self.current]['filename']} ({size_text(self.sent)})")
        elif kind == KINDS["CANCEL"]:
            self._finish("cancelled", "Cancelled in the browser; nothing was saved.")

    def _start(self, transfer: str, index: Any) -> None:
        self.cancel()
        if not isinstance(index, int) or not 0 <= index < len(self._entries):
            self.send({"kind": KINDS["ERROR"], "id": transfer, "message": f"no entry {index!r} to save"})
            return
        chosen = self._entries[index]
        try:
            members = plan(chosen.paths, chosen.base)
        except ValueError as exc:
            self._fail(transfer, str(exc))
            return
        self._stream = SaveStream(members, as_zip=chosen.as_zip)
        self._transfer, self._expected = transfer, 0
        self.message = ""
        with self.hold_trait_notifications():
            self.current, self.sent, self.total, self.status = index, 0, self._stream.total, "sending"
        self.send({"kind": KINDS["BEGIN"], "id": transfer, "filename": chosen.filename, "total": self.total})

    def _next(self, transfer: str, seq: Any) -> None:
        # each ask is a credit for the next chunk, whatever its seq says: a front end's messages
        # may arrive out of order (the browser puts the chunks back in order by their seq)
        stream = self._stream
        if stream is None:
            return  # ended: asked beyond the end
        seq = self._expected
        try:
            data = next(stream)
        except StopIteration:
            self.sent = stream.content_sent
            self.send({"kind": KINDS["END"], "id": transfer, "seq": seq, "size": stream.content_sent})
            self._close_stream()
            return
        except SaveError as exc:
            self._fail(transfer, str(exc))
            return
        self._expected += 1
        self.send({"kind": KINDS["CHUNK"], "id": transfer, "seq": seq}, buffers=[data])
        if stream.content_sent - self.sent >= PROGRESS_BYTES or stream.content_sent == stream.total:
            self.sent = stream.content_sent  # a trait message per chunk would slow the transfer down

    def _fail(self, transfer: str, message: str) -> None:
        self.send({"kind": KINDS["ERROR"], "id": transfer, "message": message})
        self._finish("error", message)

    def _finish(self, status: str, message: str) -> None:
        self._close_stream()
        self._transfer = None
        with self.hold_trait_notifications():
            self.status, self.message = status, message

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    # -- public ------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Whether a file is open for a transfer (the browser has not got it all yet)."""
        return self._stream is not None

    def cancel(self) -> None:
        """Stop the running save, on both sides: the kernel's file is closed, the browser keeps nothing."""
        if self._transfer is None:
            return
        self.send({"kind": KINDS["CANCEL"], "id": self._transfer})
        self._finish("cancelled", "Cancelled; nothing was saved.")

    def plain_text(self) -> str:
        """The entries and the save's state, as text."""
        lines = ["BrowserSave: " + (", ".join(e.filename for e in self._entries) or "nothing to save")]
        if self.status != "ready":
            lines.append(f"{self.status}: {self.message}" if self.message else self.status)
        return "\n".join([*lines, WHERE])

    def close(self) -> None:
        """Stop any save and close the widget."""
        if getattr(self, "_transfer", None) is not None:
            self.cancel()
        super().close()


def entry(
    paths: Iterable[PathLike] | PathLike, filename: str | None = None, *, base: PathLike | None = None, label: str = ""
) -> Entry:
    """One thing to save: a file, or several as one ZIP.

    Args:
        paths: A file or files.
        filename: The saved file's name; default the file's own name, or ``files.zip`` for several
            (``.zip`` is added when several files are given a name without it).
        base: The folder a ZIP's member names are relative to.
        label: The link's text; default the file name.

    Raises:
        ValueError: when no file is given.
    """
    files = (Path(paths),) if isinstance(paths, str | os.PathLike) else tuple(Path(p) for p in paths)
    if not files:
        raise ValueError("a save needs at least one file; got none")
    name = filename or (files[0].name if len(files) == 1 else "files.zip")
    if len(files) > 1 and not name.lower().endswith(".zip"):
        name += ".zip"
    if "/" in name or "\\" in name or name in {".", ".."}:
        raise ValueError(f"filename must be a plain file name, without folders; got {name!r}")
    return Entry(files, name, label or name, Path(base) if base is not None else None)


def save_to_browser(
    paths: Iterable[PathLike] | PathLike, filename: str | None = None, *, base: PathLike | None = None
) -> BrowserSave:
    """Save kernel files on the user's computer through the browser, as soon as this is displayed.

    Args:
        paths: A file, or several files (saved as one ZIP, members named relative to ``base``).
        filename: The saved file's name; default the file's name, or ``files.zip``.
        base: The folder a ZIP's member names are relative to; default the files' common folder.

    Returns:
        The widget: display it (the last line of a cell, or inside a dashboard) to start the save;
        its link saves again.

    Raises:
        ValueError: when no file is given or the name holds a folder.
    """
    return BrowserSave(paths, filename, base=base, autostart=True)


__all__ = ["KINDS", "BrowserSave", "Entry", "entry", "save_to_browser"]
