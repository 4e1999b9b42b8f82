"""``serve --workers N``: several processes that agree on tokens and signed URLs (one shared secret)
and build each archive once between them (a lock file in the cache folder, an atomic rename)."""

from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from jobtask_widgets.sample import Sample
from tests.helpers import COMMAND, Running


def test_more_than_one_worker_needs_a_secret(own_sample: Sample) -> None:
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "JOBTASK_SERVER_SECRET"}
    done = subprocess.run([*COMMAND, "serve", str(own_sample.root), "--port", "0", "--workers", "2"],
                          capture_output=True, text=True, timeout=60, env=env, check=False)  # fmt: skip
    assert (
        done.returncode == 2 and "--workers 2 needs a shared secret (--secret or JOBTASK_SERVER_SECRET)" in done.stderr
    )


def test_four_workers_share_tokens_signed_urls_and_one_archive_build(own_sample: Sample, tmp_path: Path) -> None:
    run = Running(["serve", str(own_sample.root), "--port", "0", "--workers", "4", "--secret", "a-team-secret",
                   "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    try:
        url = run.wait_for("API: ", timeout=60).removeprefix("API: ")
        run.wait_for("Press Ctrl-C")
        task = f"{url}/projects/{own_sample.project_id}/jobs/{own_sample.job_id}/tasks/{own_sample.task_ids[1]}"

        def fresh_token(_: int) -> str:  # each on a new connection: any worker issues it
            answer = requests.post(f"{url}/oauth/token", data={"grant_type": "client_credentials"},
                                   auth=(own_sample.project_id, own_sample.project_api_key), timeout=60)  # fmt: skip
            assert answer.status_code == 200
            return str(answer.json()["access_token"])

        def use(token: str) -> int:  # and any worker accepts it
            return requests.get(f"{task}/outputs/data-json/", headers={"Authorization": f"Bearer {token}"},
                                timeout=60).status_code  # fmt: skip

        with ThreadPoolExecutor(max_workers=20) as pool:
            tokens = list(pool.map(fresh_token, range(20)))
            assert list(pool.map(use, tokens * 3)) == [200] * 60
        signed = requests.get(f"{task}/downloads/results/", headers={"Authorization": f"Bearer {tokens[0]}"},
                              timeout=60).json()["data"]["url"]  # fmt: skip

        def fetch(_: int) -> str:
            answer = requests.get(signed, timeout=120)
            assert answer.status_code == 200
            return hashlib.sha256(answer.content).hexdigest()

        with ThreadPoolExecutor(max_workers=50) as pool:  # 50 first requests at once, over the 4 workers
            digests = set(pool.map(fetch, range(50)))
        assert len(digests) == 1  # byte-identical from every worker
    finally:
        assert run.interrupt() == 0  # Ctrl-C stops the workers too
    output = run.output()
    workers = set(re.findall(r"Started server process \[(\d+)\]", output))
    assert len(workers) == 4, output[-3000:]
    assert output.count("built the results archive") == 1, output[-3000:]
    for pid in workers:  # none left behind
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
