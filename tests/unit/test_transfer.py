"""Member names, sniffing and the unpacking caps, on real archive files."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from jobtask_widgets.errors import DownloadError, UnsafeArchiveError
from jobtask_widgets.transfer import part_path
from jobtask_widgets.unpack import safe_member_path, sniff, unpack


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("output/data.json", "data.json"),
        ("output/a/b.tif", "a/b.tif"),
        ("output/output/x.tif", "output/x.tif"),  # only the leading prefix goes
        ("data.json", "data.json"),
        ("./output/x", "x"),  # tar czf a.tgz ./output
    ],
)
def test_safe_member_paths(name: str, expected: str) -> None:
    assert safe_member_path(name) == PurePosixPath(expected)


@pytest.mark.parametrize(
    "name", ["/etc/passwd", "../x", "output/../../x", "a/../../x", "C:/x", "a\\..\\x", "a\x00b", ""]
)
def test_unsafe_member_paths(name: str) -> None:
    with pytest.raises(UnsafeArchiveError):
        safe_member_path(name)


def write_tar_gz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_sniff_reads_the_bytes_not_the_name(tmp_path: Path) -> None:
    archive = write_tar_gz(tmp_path / "results.zip", {"output/a": b"a"})
    assert sniff(archive) == "tar.gz"
    (tmp_path / "x.tar.gz").write_bytes(b"PK\x03\x04rest")
    assert sniff(tmp_path / "x.tar.gz") == "zip"


def test_the_size_and_ratio_caps_stop_a_bomb_and_leave_nothing(tmp_path: Path) -> None:
    bomb = write_tar_gz(tmp_path / "bomb.tgz", {"output/ok.txt": b"fine", "output/zeros": bytes(16 << 20)})
    out = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=r"100x its \d+ bytes.*max_unpacked_bytes=.*archive bomb"):
        unpack(bomb, out)  # 16 MiB of zeros gzip ~1000-fold: over the default ratio
    assert list(out.iterdir()) == []
    assert [p.name for p in unpack(bomb, out, max_unpacked_bytes=17 << 20)] == ["ok.txt", "zeros"]  # admitted
    text = json.dumps([{"id": i, "class": "vessel", "confidence": round(i / 7, 3)} for i in range(40_000)]).encode()
    results = write_tar_gz(tmp_path / "results.tgz", {"output/ok.txt": b"fine", "output/data.json": text})
    with pytest.raises(UnsafeArchiveError, match="max_unpacked_bytes=1000000"):
        unpack(results, tmp_path / "small", max_unpacked_bytes=1_000_000)
    assert not (tmp_path / "small").exists() or list((tmp_path / "small").iterdir()) == []
    assert [p.name for p in unpack(results, tmp_path / "ok")] == ["ok.txt", "data.json"]  # the defaults admit it


def test_a_damaged_archive_is_a_download_error(tmp_path: Path) -> None:
    good = write_tar_gz(tmp_path / "a.tgz", {"output/a": os.urandom(1 << 20)}).read_bytes()
    (tmp_path / "cut.tgz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DownloadError, match="is damaged"):
        unpack(tmp_path / "cut.tgz", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_unpacking_again_replaces_the_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    unpack(write_tar_gz(tmp_path / "1.tgz", {"output/a.txt": b"old"}), out)
    paths = unpack(write_tar_gz(tmp_path / "2.tgz", {"output/a.txt": b"new"}), out)
    assert paths == [(out / "a.txt").resolve()]
    assert (out / "a.txt").read_bytes() == b"new"


def test_a_link_in_the_destination_is_not_followed_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "sub").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafeArchiveError, match="through a link"):
        unpack(write_tar_gz(tmp_path / "a.tgz", {"output/sub/x.txt": b"x"}), out)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_part_files_are_hidden_beside_the_target(tmp_path: Path) -> None:
    assert part_path(tmp_path / "a.tar.gz") == tmp_path / ".a.tar.gz.part"
    assert part_path(tmp_path / ".hidden") == tmp_path / ".hidden.part"
