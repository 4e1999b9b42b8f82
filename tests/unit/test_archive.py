"""The results archive's gzip stream: compressed and stored blocks in one ordinary gzip member."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile
import zlib
from pathlib import Path

from jobtask_widgets.server.archive import ArchiveCache, compressible
from jobtask_widgets.server.store import OpenFile, TaskRef, open_inside
from jobtask_widgets.server.storebase import Listed


def test_mixed_archives_read_back_in_every_mode(tmp_path: Path) -> None:
    files = {
        "a/random.bin": os.urandom(300_000),  # stored
        "data.json": b'{"type": "FeatureCollection", "features": []}' * 2000,  # compressed
        "b/random2.bin": os.urandom(70_000),  # stored again, after compressed data
        "small.txt": b"x",
    }
    for rel, data in files.items():
        (tmp_path / "out" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "out" / rel).write_bytes(data)
    assert not compressible(tmp_path / "out" / "a/random.bin")
    assert compressible(tmp_path / "out" / "data.json")
    out = (tmp_path / "out").resolve()
    listing = [Listed(rel, (out / rel).stat().st_size, str((out / rel).stat().st_mtime_ns)) for rel in sorted(files)]

    def opener(rel: str) -> OpenFile:
        opened = open_inside(out / rel, out)
        assert opened is not None
        return opened

    archive = ArchiveCache(tmp_path / "cache").get(TaskRef("p", "j", "t"), lambda: listing, opener)
    raw = archive.path.read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    # one gzip member: decompressing the first member yields the whole tar
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    whole = decompressor.decompress(raw)
    assert decompressor.eof and decompressor.unused_data == b""
    assert whole == gzip.decompress(raw)
    # stored random data is not inflated by more than a little, compressible data shrinks
    assert len(raw) < 370_000 + 100_000
    for mode in ("r:gz", "r|gz"):
        with tarfile.open(fileobj=io.BytesIO(raw), mode=mode) as tar:
            got = {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]
        assert got == {f"output/{rel}": data for rel, data in files.items()}
    assert subprocess.run(["gzip", "-t", str(archive.path)], check=False).returncode == 0
