"""Saving to the browser, kernel side: the chunk stream (one file, a ZIP built while read, files
that change or vanish), the protocol driven message by message, and the message kinds agreeing
with the front end; the front end's own tests run under node in test_tilelayer."""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from jobtask_widgets.browsersave import ESM, KINDS, BrowserSave, entry, save_to_browser
from jobtask_widgets.errors import SaveError
from jobtask_widgets.plaintext import WHERE
from jobtask_widgets.savestream import SaveStream, plan

CHUNK = 1 << 16


def write(path: Path, size: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(hashlib.shake_256(str(seed).encode()).digest(size))
    return path


def open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def test_the_message_kinds_agree_with_the_front_end() -> None:
    text = ESM.read_text(encoding="utf-8")
    block = re.search(r"export const KINDS = \{([^}]*)\}", text)
    assert block is not None
    js_kinds = dict(re.findall(r"(\w+): \"(\w+)\"", block.group(1)))
    assert js_kinds == KINDS


def test_one_file_streams_as_it_is_in_chunks(tmp_path: Path) -> None:
    path = write(tmp_path / "scene.tif", 5 * CHUNK + 17)
    with SaveStream(plan([path]), as_zip=False, chunk=CHUNK) as stream:
        chunks = list(stream)
        assert stream.total == path.stat().st_size == stream.content_sent
    assert [len(c) for c in chunks] == [CHUNK] * 5 + [17]
    assert b"".join(chunks) == path.read_bytes()


def test_several_files_stream_as_a_zip_built_while_read_with_bounded_chunks(tmp_path: Path) -> None:
    files = [
        write(tmp_path / "out" / "data.json", 300, 1),
        write(tmp_path / "out" / "scene" / "b1.tif", 7 * CHUNK + 5, 2),
        write(tmp_path / "out" / "empty.txt", 0, 3),
    ]
    members = plan(files, tmp_path / "out")
    assert [m.arcname for m in members] == ["data.json", "scene/b1.tif", "empty.txt"]
    with SaveStream(members, as_zip=True, chunk=CHUNK) as stream:
        chunks = list(stream)
    assert max(len(c) for c in chunks) <= CHUNK + 1024  # a chunk and some headers, never a whole file
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as archive:
        assert archive.testzip() is None  # every CRC checks
        assert archive.namelist() == ["data.json", "scene/b1.tif", "empty.txt"]
        for member, path in zip(archive.namelist(), files, strict=True):
            assert archive.read(member) == path.read_bytes()


def test_a_file_changed_before_or_while_it_is_sent_ends_the_stream_and_closes_it(tmp_path: Path) -> None:
    first, second = write(tmp_path / "a.tif", 3 * CHUNK, 1), write(tmp_path / "b.tif", 3 * CHUNK, 2)
    stream = SaveStream(plan([first, second], tmp_path), as_zip=True, chunk=CHUNK)
    next(stream)
    write(second, 2 * CHUNK, 9)  # rewritten before its turn
    with pytest.raises(SaveError, match=r"b\.tif changed after the save started \(131072 bytes now\)"):
        list(stream)
    assert stream.closed
    stream.close()

    fds = open_fds()
    stream = SaveStream(plan([first]), as_zip=False, chunk=CHUNK)
    next(stream)
    with first.open("ab") as f:  # appended while it is read
        f.write(b"more")
    with pytest.raises(SaveError, match=r"a\.tif (grew|changed) while it was sent"):
        list(stream)
    assert open_fds() == fds


def test_a_file_that_vanishes_ends_the_stream_with_its_name(tmp_path: Path) -> None:
    first, second = write(tmp_path / "a.tif", 3 * CHUNK, 1), write(tmp_path / "b.tif", 3 * CHUNK, 2)
    stream = SaveStream(plan([first, second], tmp_path), as_zip=True, chunk=CHUNK)
    next(stream)
    second.unlink()
    with pytest.raises(SaveError, match=r"b\.tif vanished before it was sent"):
        list(stream)
    stream = SaveStream(plan([first]), as_zip=False, chunk=CHUNK)
    next(stream)
    first.unlink()  # while it is read: the open file still reads, the check at its end sees it
    with pytest.raises(SaveError, match=r"a\.tif vanished while it was sent"):
        list(stream)


def test_closing_a_stream_half_way_closes_its_file(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tif", 4 * CHUNK)
    fds = open_fds()
    stream = SaveStream(plan([path, write(tmp_path / "b.tif", 10)], tmp_path), as_zip=True, chunk=CHUNK)
    next(stream)
    assert not stream.closed and open_fds() == fds + 1
    stream.close()
    assert stream.closed and open_fds() == fds


def test_plan_refuses_what_cannot_be_saved(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one file"):
        plan([])
    with pytest.raises(ValueError, match="only regular files"):
        plan([tmp_path])
    with pytest.raises(ValueError, match="No such file"):
        plan([tmp_path / "missing.tif"])
    path = write(tmp_path / "a" / "x.tif", 4)
    with pytest.raises(ValueError, match="is not inside the base folder"):
        plan([path], tmp_path / "b")
    with pytest.raises(ValueError, match="given twice"):
        plan([path, path])
    with pytest.raises(ValueError, match="plain file name"):
        entry([path], "../x.zip")
    assert entry([path, write(tmp_path / "a" / "y.tif", 4)], "results").filename == "results.zip"


class Recorder:
    """What the widget sends to the front end, in order (the test plays the front end)."""

    def __init__(self, widget: BrowserSave) -> None:
        self.sent: list[tuple[dict[str, Any], list[bytes]]] = []
        widget.send = lambda content, buffers=None: self.sent.append((content, list(buffers or [])))  # type: ignore[method-assign]

    def kinds(self) -> list[str]:
        return [content["kind"] for content, _ in self.sent]


def ask(widget: BrowserSave, **content: Any) -> None:
    widget._on_msg(widget, content, [])


def test_the_protocol_sends_each_chunk_when_asked_and_ends_with_its_size(tmp_path: Path) -> None:
    files = [write(tmp_path / "out" / "a.tif", 2 * (1 << 20) + 3, 1), write(tmp_path / "out" / "data.json", 10, 2)]
    widget = BrowserSave(files, "task-results.zip")
    assert widget.entries == [
        {"label": "task-results.zip", "filename": "task-results.zip", "size": 2 * (1 << 20) + 13, "files": 2}
    ]
    sent = Recorder(widget)
    ask(widget, kind="start", id="t1", entry=0)
    assert sent.sent[0][0] == {"kind": "begin", "id": "t1", "filename": "task-results.zip", "total": 2 * (1 << 20) + 13}
    assert (widget.status, widget.current, widget.sent) == ("sending", 0, 0) and widget.busy
    seq = 0
    while sent.kinds()[-1] != "end":
        ask(widget, kind="next", id="t1", seq=seq)
        seq += 1
    chunks = [b for content, buffers in sent.sent if content["kind"] == "chunk" for b in buffers]
    assert [c["seq"] for c, _ in sent.sent if c["kind"] == "chunk"] == list(range(len(chunks)))
    assert sent.sent[-1][0] == {"kind": "end", "id": "t1", "seq": len(chunks), "size": 2 * (1 << 20) + 13}
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as archive:
        assert archive.read("a.tif") == files[0].read_bytes()
    assert not widget.busy and widget.sent == widget.total
    ask(widget, kind="next", id="t1", seq=seq)  # asked beyond the end: nothing
    assert sent.kinds()[-1] == "end"
    ask(widget, kind="saved", id="t1", size=len(b"".join(chunks)))
    assert widget.status == "saved" and widget.message == "Saved task-results.zip (2.0 MB)"


def test_cancel_from_either_side_frees_the_kernels_side(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tif", 3 * (1 << 20))
    widget = save_to_browser(path)
    assert widget.autostart and widget.entries[0]["filename"] == "a.tif"
    sent = Recorder(widget)
    fds = open_fds()
    ask(widget, kind="start", id="t1", entry=0)
    ask(widget, kind="next", id="t1", seq=0)
    assert widget.busy and open_fds() == fds + 1
    ask(widget, kind="cancel", id="t1")  # from the browser
    assert (widget.status, widget.busy, open_fds()) == ("cancelled", False, fds)
    ask(widget, kind="next", id="t1", seq=1)  # late: ignored
    assert sent.kinds() == ["begin", "chunk"]
    ask(widget, kind="start", id="t2", entry=0)
    ask(widget, kind="next", id="t2", seq=0)
    widget.cancel()  # from the kernel
    assert sent.sent[-1][0] == {"kind": "cancel", "id": "t2"}
    assert (widget.status, widget.busy, open_fds()) == ("cancelled", False, fds)
    widget.close()


def test_a_vanished_file_and_bad_requests_end_in_an_error_message(tmp_path: Path) -> None:
    files = [write(tmp_path / "a.tif", 10, 1), write(tmp_path / "b.tif", 10, 2)]
    widget = BrowserSave(files, "x.zip")
    sent = Recorder(widget)
    ask(widget, kind="start", id="t1", entry=3)
    assert sent.sent[-1][0] == {"kind": "error", "id": "t1", "message": "no entry 3 to save"}
    files[1].unlink()
    ask(widget, kind="start", id="t2", entry=0)
    assert sent.sent[-1][0]["kind"] == "error" and "b.tif" in sent.sent[-1][0]["message"]
    assert widget.status == "error" and "b.tif" in widget.message
    files[1].write_bytes(b"0123456789")
    write(files[0], 3 << 20)  # big enough that b.tif is read after the first chunks
    ask(widget, kind="start", id="t3", entry=0)
    ask(widget, kind="next", id="t3", seq=5)  # asks are credits: an ask out of order gets chunk 0
    assert sent.sent[-1][0] == {"kind": "chunk", "id": "t3", "seq": 0}
    files[1].unlink()
    while sent.sent[-1][0]["kind"] == "chunk":
        ask(widget, kind="next", id="t3", seq=0)
    assert sent.sent[-1][0]["kind"] == "error" and not widget.busy
    text = repr(widget)
    assert text.startswith("BrowserSave: x.zip\nerror: ") and "b.tif vanished" in text and text.endswith(WHERE)


def test_file_times_a_zip_cannot_hold_are_clamped_not_refused(tmp_path: Path) -> None:
    old, late = write(tmp_path / "old.tif", 10, 1), write(tmp_path / "late.tif", 10, 2)
    os.utime(old, (0, 0))  # 1970
    os.utime(late, (4_400_000_000, 4_400_000_000))  # 2109
    with SaveStream(plan([old, late], tmp_path), as_zip=True) as stream:
        body = b"".join(stream)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert [i.date_time[0] for i in archive.infolist()] == [1980, 2107]
        assert archive.read("late.tif") == late.read_bytes()
