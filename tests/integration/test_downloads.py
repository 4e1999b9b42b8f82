"""download_results and download_quicklooks over real HTTP: folders, progress, resume, renewal,
the skip of a current archive, and archives that must not be unpacked (served by a test server)."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

import jobtask_widgets as jw
from jobtask_widgets import transfer
from jobtask_widgets.errors import DownloadError, UnsafeArchiveError
from jobtask_widgets.sample import Sample
from jobtask_widgets.server.auth import Signer
from tests.helpers import GOOD, SECRET, UNSAFE, Api, login, member, store_output, tar_bytes, visible, zip_bytes
from tests.proxy import FaultProxy

DATA = Path(__file__).parent.parent / "data"


@pytest.fixture(autouse=True)
def _quick_resumes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "RESUME_BACKOFF", 0.01)


def test_download_results_into_the_default_folder(
    api: Api, sample: Sample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    login(api.url, sample)
    task = jw.initialize_jobtask(sample.task_ids[0], sample.job_id)
    paths = task.download_results(progress=False)
    folder = tmp_path / f"project_{sample.project_id}" / f"job_{sample.job_id}" / f"jobtask_{sample.task_ids[0]}"
    expected = store_output(sample, sample.task_ids[0])
    assert paths == [str(folder / rel) for rel in expected]  # archive order: sorted, data.json included
    assert all(Path(p).is_absolute() for p in paths)
    assert {Path(p).relative_to(folder).as_posix(): Path(p).read_bytes() for p in paths} == expected
    assert task.results == paths
    assert visible(folder) == sorted({*expected, *(str(Path(r).parent) for r in expected if "/" in r)})


def test_download_results_reports_progress_as_asked(
    api: Api, sample: Sample, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    login(api.url, sample)
    task = jw.initialize_jobtask(sample.task_ids[1], sample.job_id)
    calls: list[tuple[int, int | None]] = []
    task.download_results(tmp_path / "a", progress=lambda done, total: calls.append((done, total)))
    size = (tmp_path / "a" / f".results_{sample.task_ids[1]}.archive").stat().st_size
    assert calls[-1] == (size, size)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert {t for _, t in calls} == {size}
    capsys.readouterr()
    task.download_results(tmp_path / "b", progress=False)
    assert capsys.readouterr().err == ""
    task.download_results(tmp_path / "c", progress=True)
    err = capsys.readouterr().err
    assert "results 9c41d0e2" in err
    assert "100%" in err


def test_a_current_archive_is_not_fetched_again_and_a_changed_one_is(
    own_api: Api, own_sample: Sample, tmp_path: Path
) -> None:
    proxy = FaultProxy(own_api.url).start()
    try:
        login(proxy.url, own_sample)
        task = jw.initialize_jobtask(own_sample.task_ids[0], own_sample.job_id)
        first = task.download_results(tmp_path, progress=False)
        second = task.download_results(tmp_path, progress=False)
        assert first == second
        assert [s.method for s in proxy.requests_to("/archives/")] == ["GET", "HEAD"]
        (own_sample.task_dir(own_sample.task_ids[0]) / "output" / "notes.txt").write_text("new")
        third = task.download_results(tmp_path, progress=False)
        assert [s.method for s in proxy.requests_to("/archives/")] == ["GET", "HEAD", "HEAD", "GET"]
        assert Path(third[-1]).name == "notes.txt"
    finally:
        proxy.stop()


def test_a_cut_transfer_resumes_with_range_and_if_range(proxy: FaultProxy, sample: Sample, tmp_path: Path) -> None:
    login(proxy.url, sample)
    task = jw.initialize_jobtask(sample.task_ids[1], sample.job_id)
    proxy.add(path="/archives/", cut_after=3_000_000)
    proxy.add(path="/archives/", cut_after=1_000_000)
    paths = task.download_results(tmp_path, progress=False)
    gets = proxy.requests_to("/archives/", "GET")
    assert len(gets) == 3
    assert "Range" not in gets[0].headers
    # each resume starts exactly where the cut was: nothing that arrived is lost
    assert gets[1].headers["Range"] == "bytes=3000000-"
    assert gets[2].headers["Range"] == "bytes=4000000-"
    assert gets[1].headers["If-Range"] == gets[2].headers["If-Range"]
    assert {Path(p).relative_to(tmp_path).as_posix(): Path(p).read_bytes() for p in paths} == store_output(
        sample, sample.task_ids[1]
    )


def test_cuts_beyond_the_resumes_fail_leave_only_the_partial_file_and_resume_later(
    proxy: FaultProxy, sample: Sample, tmp_path: Path
) -> None:
    login(proxy.url, sample)
    task = jw.initialize_jobtask(sample.task_ids[1], sample.job_id)
    proxy.add(path="/archives/", cut_after=500_000, times=transfer.RESUMES + 1)
    with pytest.raises(DownloadError, match=f"transfer failed after {transfer.RESUMES} resumes"):
        task.download_results(tmp_path, progress=False)
    assert visible(tmp_path) == []
    part = tmp_path / f".results_{sample.task_ids[1]}.archive.part"
    assert part.stat().st_size > 0
    assert task.results is None
    kept = part.stat().st_size
    paths = task.download_results(tmp_path, progress=False)  # the network is back: resume the .part
    assert proxy.requests_to("/archives/", "GET")[-1].headers["Range"] == f"bytes={kept}-"
    assert len(paths) == 2
    assert not part.exists()


def test_an_expired_signed_url_is_renewed_once(api: Api, sample: Sample, tmp_path: Path) -> None:
    client = login(api.url, sample)
    ids = (sample.project_id, sample.job_id, sample.task_ids[0])
    expired = Signer(SECRET).sign_archive(*ids, int(time.time()) - 1)
    stale = f"{api.url}/archives/{'/'.join(ids)}/output.tar.gz?{urlencode(expired)}"
    urls = [stale, client.results_url(*ids)]
    got = transfer.download(client.session, lambda: urls.pop(0), tmp_path / "a.tar.gz")
    assert urls == []
    assert got.fetched and got.size == (tmp_path / "a.tar.gz").stat().st_size
    with pytest.raises(DownloadError, match="403: the download URL has expired"):
        transfer.download(client.session, lambda: stale, tmp_path / "b.tar.gz")
    assert not (tmp_path / "b.tar.gz").exists()


def test_download_results_asks_for_a_new_url_when_the_archive_answers_403(
    proxy: FaultProxy, sample: Sample, tmp_path: Path
) -> None:
    login(proxy.url, sample)
    task = jw.initialize_jobtask(sample.task_ids[0], sample.job_id)
    proxy.add(path="/archives/", status=403)
    assert len(task.download_results(tmp_path, progress=False)) == 2
    assert len(proxy.requests_to("/downloads/results/")) == 2


@pytest.mark.parametrize("kind", list(UNSAFE))
def test_unsafe_archives_are_refused_and_leave_nothing(
    proxy: FaultProxy, sample: Sample, tmp_path: Path, kind: str
) -> None:
    body, message = UNSAFE[kind]
    login(proxy.url, sample)
    task = jw.initialize_jobtask(sample.task_ids[0], sample.job_id)
    proxy.add(path="/archives/", body=body)
    out = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=message):
        task.download_results(out, progress=False)
    assert visible(out) == []
    assert not [p for p in out.iterdir() if p.name.startswith(".unpacking-")]
    assert not (tmp_path / "evil.txt").exists()
    assert task.results is None


@pytest.mark.parametrize(
    "body",
    [
        tar_bytes(GOOD, (member("output/a/b.txt"), b"b"), gz=False),
        zip_bytes(("output/data.json", GOOD[1], None), ("output/a/b.txt", b"b", None)),
    ],
    ids=["plain tar", "zip"],
)
def test_tar_and_zip_are_sniffed_not_guessed_from_the_name(
    proxy: FaultProxy, sample: Sample, tmp_path: Path, body: bytes
) -> None:
    login(proxy.url, sample)
    task = jw.initialize_jobtask(sample.task_ids[0], sample.job_id)
    proxy.add(path="/archives/", body=body)  # served as output.tar.gz whatever it is
    paths = task.download_results(tmp_path, progress=False)
    assert [Path(p).relative_to(tmp_path).as_posix() for p in paths] == ["data.json", "a/b.txt"]
    assert Path(paths[1]).read_bytes() == b"b"


def test_the_original_platforms_archive_unpacks_in_archive_order(
    proxy: FaultProxy, sample: Sample, tmp_path: Path
) -> None:
    login(proxy.url, sample)
    task = jw.initialize_jobtask(sample.task_ids[0], sample.job_id)
    proxy.add(path="/archives/", body=(DATA / "up42_result_tif.tgz").read_bytes())
    paths = task.download_results(tmp_path, progress=False)
    uuid = "7e17f023-a8e3-43bd-aaac-5bbef749c7f4"
    assert paths == [str(tmp_path / uuid / f"{uuid}_0-0.tif"), str(tmp_path / "data.json")]
    assert Path(paths[0]).stat().st_size == 2362759


def test_download_quicklooks(api: Api, sample: Sample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    login(api.url, sample)
    task = jw.initialize_jobtask(sample.task_ids[0], sample.job_id)
    paths = task.download_quicklooks(progress=False)
    folder = tmp_path / f"project_{sample.project_id}" / f"job_{sample.job_id}" / f"jobtask_{sample.task_ids[0]}"
    assert paths == [str(folder / "quicklooks" / "quicklook_preview.png")]
    assert (
        Path(paths[0]).read_bytes() == (sample.task_dir(sample.task_ids[0]) / "quicklooks" / "preview.png").read_bytes()
    )
    assert task.quicklooks == paths
    explicit = task.download_quicklooks(tmp_path / "ql", progress=False)
    assert explicit == [str(tmp_path / "ql" / "quicklook_preview.png")]


def test_a_task_without_quicklooks_gives_an_empty_list(own_api: Api, own_sample: Sample, tmp_path: Path) -> None:
    folder = own_sample.task_dir(own_sample.task_ids[1]) / "quicklooks"
    for p in folder.iterdir():
        p.unlink()
    login(own_api.url, own_sample)
    task = jw.initialize_jobtask(own_sample.task_ids[1], own_sample.job_id)
    assert task.download_quicklooks(tmp_path / "q", progress=False) == []
    assert task.quicklooks == []
    assert not (tmp_path / "q").exists()


def test_a_cancelled_download_stops_and_leaves_nothing(proxy: FaultProxy, sample: Sample, tmp_path: Path) -> None:
    import threading

    from jobtask_widgets.errors import DownloadCancelled

    login(proxy.url, sample)
    task = jw.initialize_jobtask(sample.task_ids[1], sample.job_id)
    proxy.add(path="/archives/", rate=2_000_000)  # about 7 s for the 13 MB archive
    cancel, seen = threading.Event(), []

    def progress(done: int, total: int | None) -> None:
        seen.append(done)
        if done >= 1_000_000:
            cancel.set()  # as a Cancel button would, from another thread

    out = tmp_path / "out"
    with pytest.raises(DownloadCancelled, match="cancelled"):
        task.download_results(out, progress=progress, cancel=cancel)
    assert 1_000_000 <= seen[-1] < 3_000_000  # stopped within a chunk or two of the request
    assert list(out.iterdir()) == []  # no .part file, no sidecar, no unpacked file
    assert task.results is None
    paths = task.download_results(out, progress=False)  # a later download starts afresh and completes
    assert len(paths) == len(store_output(sample, sample.task_ids[1]))


def test_cancelled_quicklooks_leave_nothing(api: Api, sample: Sample, tmp_path: Path) -> None:
    import threading

    from jobtask_widgets.errors import DownloadCancelled

    login(api.url, sample)
    task = jw.initialize_jobtask(sample.task_ids[0], sample.job_id)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DownloadCancelled):
        task.download_quicklooks(tmp_path, progress=False, cancel=cancel)
    assert list(tmp_path.iterdir()) == []
    assert task.quicklooks is None
