"""Downloads are verified: a byte flipped on the way (length kept) is never accepted, kept or reused,
with the server's SHA-256 (Repr-Digest) and without it (the gzip CRC); a clean second call works."""

from __future__ import annotations

from pathlib import Path

import pytest

import jobtask_widgets as jw
from jobtask_widgets import transfer
from jobtask_widgets.errors import DownloadError
from jobtask_widgets.sample import Sample
from tests.helpers import login, store_output, visible
from tests.proxy import FaultProxy

RGB = 0  # the sample's first task: the Landsat scene (stored in the gzip stream as it is) and data.json


@pytest.fixture(autouse=True)
def _quick_resumes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "RESUME_BACKOFF", 0.01)


def task_of(proxy: FaultProxy, sample: Sample) -> jw.JobTask:
    login(proxy.url, sample)
    return jw.initialize_jobtask(sample.task_ids[RGB], sample.job_id)


def unpacked(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}  # fmt: skip


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.exists() else []


def test_the_server_states_the_digest_of_what_it_serves(proxy: FaultProxy, sample: Sample, tmp_path: Path) -> None:
    task = task_of(proxy, sample)
    client = task.source.client  # type: ignore[attr-defined]  # the API source's client
    got = transfer.download(client.session, lambda: client.results_url(
        sample.project_id, sample.job_id, sample.task_ids[RGB]), tmp_path / "a.tar.gz")  # fmt: skip
    assert got.digest_checked and len(got.sha256) == 64


def test_a_flipped_byte_is_fetched_again_and_only_the_clean_copy_kept(
    proxy: FaultProxy, sample: Sample, tmp_path: Path
) -> None:
    task = task_of(proxy, sample)
    proxy.add(path="/archives/", flip_at=100_000)
    task.download_results(tmp_path, progress=False)
    assert unpacked(tmp_path) == store_output(sample, sample.task_ids[RGB])
    assert len(proxy.requests_to("/archives/", "GET")) == 2  # the damaged one, then the clean one


def test_flipped_twice_is_a_download_error_and_nothing_is_kept(
    proxy: FaultProxy, sample: Sample, tmp_path: Path
) -> None:
    task = task_of(proxy, sample)
    proxy.add(path="/archives/", flip_at=100_000, times=2)
    with pytest.raises(DownloadError, match=r"/archives/.*does not match the SHA-256.*twice") as failed:
        task.download_results(tmp_path / "out", progress=False)
    assert "signature" not in str(failed.value)
    assert visible(tmp_path / "out") == [] and hidden(tmp_path / "out") == []
    assert task.results is None


@pytest.mark.parametrize("where", [100_000, -8], ids=["data", "gzip CRC"])
def test_without_a_digest_the_gzip_crc_refuses_a_flipped_byte_and_a_clean_call_works(
    proxy: FaultProxy, sample: Sample, tmp_path: Path, where: int
) -> None:
    task = task_of(proxy, sample)
    proxy.add(path="/archives/", flip_at=where, drop_headers=("Repr-Digest",))  # as the original platform
    with pytest.raises(DownloadError, match="is damaged"):
        task.download_results(tmp_path, progress=False)
    assert visible(tmp_path) == [] and hidden(tmp_path) == []  # the damaged archive is not kept
    proxy.add(path="/archives/", drop_headers=("Repr-Digest",))
    task.download_results(tmp_path, progress=False)  # the clean second call fetches anew
    assert unpacked(tmp_path) == store_output(sample, sample.task_ids[RGB])
    assert len(proxy.requests_to("/archives/", "GET")) == 2


def test_a_verified_archive_is_reused_and_one_damaged_since_is_fetched_again(
    proxy: FaultProxy, sample: Sample, tmp_path: Path
) -> None:
    task = task_of(proxy, sample)
    task.download_results(tmp_path, progress=False)
    task.download_results(tmp_path, progress=False)
    assert len(proxy.requests_to("/archives/", "GET")) == 1  # verified and current: only a HEAD
    archive = next(p for p in tmp_path.iterdir() if p.name.endswith(".archive"))
    raw = bytearray(archive.read_bytes())
    raw[100_000] ^= 0xFF  # damaged on disk since it was verified (size and ETag unchanged)
    archive.write_bytes(bytes(raw))
    task.download_results(tmp_path, progress=False)
    assert len(proxy.requests_to("/archives/", "GET")) == 2
    assert unpacked(tmp_path) == store_output(sample, sample.task_ids[RGB])
