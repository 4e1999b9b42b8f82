"""Bounded unpacking on real archive files: bombs, member counts, names, the disk, and a move into
place that is all or nothing."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from jobtask_widgets.errors import UnsafeArchiveError
from jobtask_widgets.unpack import ENV_MAX_UNPACKED_BYTES, MAX_MEMBERS, unpack


def tar_gz(path: Path, members: list[tuple[str, bytes]], *, declared: dict[str, int] | None = None) -> Path:
    """A .tar.gz of ``members``; a name in ``declared`` gets that size in its header and no data (a lie)."""
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if declared and name in declared:
                info.size = declared[name]
                tar.addfile(info)  # the header alone: the archive ends where its data should be
                continue
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def state(folder: Path) -> dict[str, bytes | str]:
    """Everything in a folder, hidden files and links included."""
    out: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        out[rel] = f"-> {path.readlink()}" if path.is_symlink() else (path.read_bytes() if path.is_file() else "/")
    return out


def test_a_gzip_bomb_is_refused_on_its_header_before_a_byte_is_written(tmp_path: Path) -> None:
    bomb = tar_gz(tmp_path / "bomb.tgz", [("output/zeros", bytes(64 << 20))])  # ~64 KB, 1,000-fold
    out = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=r"100x its \d+ bytes.*archive bomb"):
        unpack(bomb, out)
    assert state(out) == {}


def test_the_cap_comes_from_the_keyword_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = tar_gz(tmp_path / "bomb.tgz", [("output/zeros", bytes(8 << 20))])
    monkeypatch.setenv(ENV_MAX_UNPACKED_BYTES, str(9 << 20))
    assert [p.name for p in unpack(bomb, tmp_path / "a")] == ["zeros"]
    monkeypatch.setenv(ENV_MAX_UNPACKED_BYTES, "lots")
    with pytest.raises(ValueError, match=f"{ENV_MAX_UNPACKED_BYTES} must be a number of bytes"):
        unpack(bomb, tmp_path / "b")
    with pytest.raises(UnsafeArchiveError, match="max_unpacked_bytes=1000"):
        unpack(bomb, tmp_path / "c", max_unpacked_bytes=1000)


def test_too_many_members_are_refused_and_leave_nothing(tmp_path: Path) -> None:
    many = tar_gz(tmp_path / "many.tgz", [(f"output/{i}.txt", b"") for i in range(MAX_MEMBERS + 1)])
    out = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=f"more than {MAX_MEMBERS} members"):
        unpack(many, out)
    assert state(out) == {}
    few = tar_gz(tmp_path / "few.tgz", [(f"output/{i}.txt", b"") for i in range(11)])
    with pytest.raises(UnsafeArchiveError, match="more than 10 members"):
        unpack(few, out, max_members=10)
    assert len(unpack(few, out, max_members=11)) == 11


@pytest.mark.parametrize(
    "name",
    [
        "output/new\nline.tif",
        "output/bell\x07.tif",
        "output/evil\u202egnp.tif",
        "output/a\u2066b.tif",
        "output/\x1b[31m",
    ],
)
def test_control_and_bidi_characters_in_names_are_refused(tmp_path: Path, name: str) -> None:
    archive = tar_gz(tmp_path / "a.tgz", [("output/data.json", b"{}"), (name, b"x")])
    with pytest.raises(UnsafeArchiveError, match="unsafe name"):
        unpack(archive, tmp_path / "out")
    assert state(tmp_path / "out") == {}


def test_unicode_names_that_are_plain_text_are_kept(tmp_path: Path) -> None:
    archive = tar_gz(tmp_path / "a.tgz", [("output/Zürich_Ελλάδα_東京.tif", b"x")])
    assert [p.name for p in unpack(archive, tmp_path / "out")] == ["Zürich_Ελλάδα_東京.tif"]


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    archive = tar_gz(tmp_path / "a.tgz", [("output/a.tif", b"first"), ("output/x", b"x"), ("output/a.tif", b"second")])
    with pytest.raises(UnsafeArchiveError, match=r"'output/a\.tif' appears twice"):
        unpack(archive, tmp_path / "out")
    assert state(tmp_path / "out") == {}


def test_an_archive_that_does_not_fit_the_disk_is_refused_before_writing(tmp_path: Path) -> None:
    archive = tar_gz(tmp_path / "a.tgz", [("output/ok.txt", b"fine"), ("output/huge", b"")],
                     declared={"output/huge": 1 << 50})  # fmt: skip  # declares 1 PiB
    with pytest.raises(UnsafeArchiveError, match="does not fit the output disk"):
        unpack(archive, tmp_path / "out", max_unpacked_bytes=1 << 60)
    assert state(tmp_path / "out") == {}


def test_a_refusal_leaves_the_output_folder_exactly_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "out"
    unpack(tar_gz(tmp_path / "1.tgz", [("output/data.json", b"old"), ("output/a/b.tif", b"old tif")]), out)
    (tmp_path / "elsewhere").mkdir()
    (out / "link").symlink_to(tmp_path / "elsewhere")
    (out / "file").write_bytes(b"a file")
    before = state(out)
    for members in (
        [("output/data.json", b"new"), ("output/a/b.tif", b"new tif"), ("output/link/x.tif", b"out")],  # a link out
        [("output/data.json", b"new"), ("output/file/x.tif", b"x")],  # a folder where a file is
        [("output/data.json", b"new"), ("output/a", b"x")],  # a file where a folder is
    ):
        with pytest.raises(UnsafeArchiveError):
            unpack(tar_gz(tmp_path / "2.tgz", members), out)
        assert state(out) == before
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_new_archive_replaces_the_old_files_in_one_move(tmp_path: Path) -> None:
    out = tmp_path / "out"
    unpack(tar_gz(tmp_path / "1.tgz", [("output/data.json", b"old"), ("output/a/b.tif", b"old tif")]), out)
    unpack(tar_gz(tmp_path / "2.tgz", [("output/data.json", b"new"), ("output/c/d.tif", b"d")]), out)
    assert state(out) == {"a": "/", "a/b.tif": b"old tif", "c": "/", "c/d.tif": b"d", "data.json": b"new"}
