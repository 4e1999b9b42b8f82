"""The widget's HTML pieces: pure functions, every server string escaped."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobtask_widgets import errors, taskinfo


@pytest.mark.parametrize(
    ("started", "finished", "expected"),
    [
        ("2026-11-02T09:14:03.512Z", "2026-11-02T09:16:41.907Z", "2 min 38 s"),
        ("2026-11-02T09:14:03Z", "2026-11-02T09:14:09Z", "6 s"),
        ("2026-11-02T08:00:00+00:00", "2026-11-02T09:02:05+00:00", "1 h 02 min 05 s"),
        ("2026-11-02T09:16:41Z", "2026-11-02T09:14:03Z", ""),  # reversed
        ("2026-11-02T09:14:03Z", None, ""),  # still running
        ("yesterday", "2026-11-02T09:14:03Z", ""),
        ("2026-11-02T09:14:03", "2026-11-02T09:16:41Z", ""),  # naive against aware: unknown
    ],
)
def test_duration_text(started: object, finished: object, expected: str) -> None:
    assert taskinfo.duration_text(started, finished) == expected


def test_header_escapes_and_survives_missing_fields() -> None:
    html = taskinfo.header_html({"name": "<b>x</b>", "status": "FAILED", "block": "not a dict"}, "t-1")
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert "#cf222e" in html and "unknown block" in html and "took" not in html
    assert "job task t-1" in taskinfo.header_html({}, "t-1")


def test_info_table_flattens_nested_keys_and_quotes_non_strings() -> None:
    info = {"id": "a", "block": {"name": "b", "tags": ["x", "<y>"]}, "progress": 100, "empty": {}, "none": None}
    assert taskinfo.flatten(info) == [("id", "a"), ("block.name", "b"), ("block.tags", ["x", "<y>"]),
                                      ("progress", 100), ("empty", {}), ("none", None)]  # fmt: skip
    table = taskinfo.info_table_html(info)
    assert "<code>[&quot;x&quot;, &quot;&lt;y&gt;&quot;]</code>" in table
    assert "<code>100</code>" in table and "<code>null</code>" in table and "<code>{}</code>" in table


def test_files_are_listed_relative_with_sizes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "<x>.tif").write_bytes(b"0" * 2048)
    html = taskinfo.files_html([tmp_path / "a" / "<x>.tif", tmp_path / "gone.json"], tmp_path)
    assert "<code>a/&lt;x&gt;.tif</code>" in html and "2.0 KB" in html and "missing" in html
    assert taskinfo.files_html([]) == "<i>no files</i>"


@pytest.mark.parametrize(
    ("size", "text"), [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KB"), (5 << 20, "5.0 MB"), (3 << 40, "3072.0 GB")]
)
def test_size_text(size: int, text: str) -> None:
    assert taskinfo.size_text(size) == text


def test_error_html_gives_plain_words_then_the_chain_one_click_away() -> None:
    try:
        try:
            raise OSError("disk <full>")
        except OSError as exc:
            raise errors.DownloadError("transfer failed") from exc
    except errors.DownloadError as exc:
        html = taskinfo.error_html(exc, "Downloading <results>")
    headline, details = html.split("<details>")
    assert "Downloading &lt;results&gt; failed." in headline and "Try again" in headline
    assert "DownloadError: transfer failed" in headline
    assert "OSError: disk &lt;full&gt;" in details and "Traceback" in details and "<full>" not in html


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (errors.AuthenticationError("x"), "refused the credentials"),
        (errors.NotFoundError("x", status=404), "does not know"),
        (errors.APIError("x", status=None), "could not be reached"),
        (errors.APIError("x", status=502), "failed while answering"),
        (errors.APIError("x", status=400), "refused the request"),
        (errors.DownloadCancelled("x"), "cancelled"),
        (errors.UnsafeArchiveError("x"), "unsafe"),
        (errors.DownloadError("x"), "download failed"),
        (errors.RasterError("x"), "cannot be read"),
        (ValueError("x"), "not accepted"),
        (PermissionError("x"), "output folder"),
        (RuntimeError("x"), "unexpected"),
    ],
)
def test_explain_names_each_family_in_plain_words(exc: BaseException, words: str) -> None:
    assert words in errors.explain(exc)
