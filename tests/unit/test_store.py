"""The store's start-up check and its path rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from jobtask_widgets.errors import StoreError
from jobtask_widgets.sample import Sample
from jobtask_widgets.server import create_app
from jobtask_widgets.server.store import Store, TaskRef


def test_the_sample_store_checks_clean(own_sample: Sample) -> None:
    refs = Store(own_sample.root).check()
    assert refs == [TaskRef(own_sample.project_id, own_sample.job_id, t) for t in sorted(own_sample.task_ids)]


def test_a_missing_root_or_projects_folder_is_explained(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is not a folder"):
        Store(tmp_path / "nowhere")
    with pytest.raises(StoreError, match=r"has no projects/ folder.*jobtask-widgets sample"):
        Store(tmp_path).check()


def break_info(sample: Sample, how: str) -> str:
    task = sample.task_dir(sample.task_ids[1])
    info = task / "info.json"
    if how == "missing":
        info.unlink()
    elif how == "not json":
        info.write_text("{oops")
    elif how == "a list":
        info.write_text("[]")
    elif how == "wrong id":
        info.write_text(json.dumps({**json.loads(info.read_text()), "id": "someone-else"}))
    return sample.task_ids[1]


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing", "no info.json"),
        ("not json", "info.json cannot be read"),
        ("a list", "info.json holds a list, not a JSON object"),
        ("wrong id", "info.json has id 'someone-else', expected the folder name"),
    ],
)
def test_a_broken_task_is_named_at_start(own_sample: Sample, how: str, message: str) -> None:
    task_id = break_info(own_sample, how)
    with pytest.raises(StoreError) as info:
        create_app(own_sample.root)
    text = str(info.value)
    assert task_id in text
    assert message in text
    assert own_sample.task_ids[0] not in text  # the healthy task is not blamed


def test_bad_folder_names_and_escaping_links_are_named(own_sample: Sample, tmp_path: Path) -> None:
    tasks = own_sample.task_dir(own_sample.task_ids[0]).parent
    shutil.copytree(own_sample.task_dir(own_sample.task_ids[0]), tasks / "bad name")
    outside = tmp_path / "elsewhere"
    shutil.copytree(own_sample.task_dir(own_sample.task_ids[0]), outside)
    (tasks / "linked").symlink_to(outside)
    with pytest.raises(StoreError) as info:
        Store(own_sample.root).check()
    assert "'bad name' is not a valid id" in str(info.value)
    assert "linked: the folder is a link that leaves the store root" in str(info.value)


def test_output_files_leave_out_links_that_escape(own_sample: Sample, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    ref = TaskRef(own_sample.project_id, own_sample.job_id, own_sample.task_ids[0])
    output = own_sample.task_dir(ref.task_id) / "output"
    (output / "escape.txt").symlink_to(secret)
    (output / "escape-dir").symlink_to(tmp_path)
    (output / "copy.json").symlink_to(output / "data.json")
    files = {listed.path: listed for listed in Store(own_sample.root).output_files(ref)}
    assert "escape.txt" not in files
    assert not any(name.startswith("escape-dir") for name in files)
    assert files["copy.json"].size == (output / "data.json").stat().st_size  # the link's target
    with Store(own_sample.root).open_output_file(ref, "copy.json") as opened:
        assert b"".join(opened.chunks()) == (output / "data.json").read_bytes()
    assert "data.json" in files


def test_lifetimes_are_checked(own_sample: Sample) -> None:
    with pytest.raises(ValueError, match="token_ttl must be at least 300"):
        create_app(own_sample.root, token_ttl=299)
    with pytest.raises(ValueError, match="url_ttl must be at least 1"):
        create_app(own_sample.root, url_ttl=0)
    with pytest.raises(StoreError, match="no credentials file"):
        create_app(own_sample.root, credentials_file=own_sample.root / "missing.json")
