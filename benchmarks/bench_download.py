"""Benchmark: downloading a ~1 GiB results archive over loopback, ours against curl.

Builds a sample store whose first task holds an extra ~1 GiB of incompressible bytes, serves it
with ``jobtask-widgets serve`` in a subprocess, warms the archive cache (the build is timed
apart and not counted), then downloads the same signed URL in a fresh process per run:

- ``curl``:  ``curl -s -o FILE URL``, the reference;
- ``ours``:  ``jobtask_widgets.transfer.download`` with a fresh ``requests.Session()`` (no unpacking);
- ``naive``: ``requests.get(url).content`` written to a file, to show the memory it costs.

Targets: ours >= 70 % of curl's throughput (best of the runs); ours grows its RSS by < 50 MB
(worst run). Prints every run and a summary; exits 1 when a target fails.

    python benchmarks/bench_download.py [--mib 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MB = 1_000_000
VARIANTS = ("curl", "ours", "naive")
TARGET_RATIO = 0.70
TARGET_RSS_MB = 50.0


def _status_kb(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def child(variant: str, url: str, target: str) -> None:
    """One download in this process; print seconds, bytes and RSS growth as JSON."""
    import requests

    from jobtask_widgets.transfer import download

    session = requests.Session()
    with contextlib.suppress(OSError):  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5")
    before = _status_kb("VmRSS")
    started = time.perf_counter()
    if variant == "ours":
        got = download(session, lambda: url, target, progress=False)
        assert got.fetched, "the download was skipped as current: the target folder was not fresh"
        size = got.size
    else:
        body = requests.get(url, timeout=(10, 600)).content
        Path(target).write_bytes(body)
        size = len(body)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "bytes": size, "growth_mb": (_status_kb("VmHWM") - before) * 1024 / MB}))


def spawn(cmd: list[str]) -> tuple[str, int]:
    """Run ``cmd``; return its stdout and its own peak RSS in kB (``wait4``: this child only)."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited with {proc.returncode}")
    return text, usage.ru_maxrss


def start_server(root: Path, cache: Path) -> tuple[subprocess.Popen[str], str]:
    """``jobtask-widgets serve`` on a free loopback port; return the process and its API URL."""
    cmd = [sys.executable, "-m", "jobtask_widgets.cli", "serve", str(root), "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--cache-dir", str(cache), "--log-level", "warning", "--url-ttl", "3600"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("API: "):
            return proc, line.split()[1]
    stop_server(proc)
    raise RuntimeError("the server exited before it listened")


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def write_store(tmp: Path, mib: int) -> Any:
    """The sample store plus ``mib`` MiB of seeded random bytes in the first task's output/."""
    import numpy as np

    from jobtask_widgets.sample import write_sample

    sample = write_sample(tmp / "store")
    rng = np.random.default_rng(20261102)
    with open(sample.task_dir(sample.task_ids[0]) / "output" / "big.bin", "wb") as out:
        for _ in range(mib // 16):
            out.write(rng.bytes(16 << 20))  # 16 MiB at a time, never the whole file in memory
        out.write(rng.bytes((mib % 16) << 20))
    return sample


def one_run(variant: str, url: str, folder: Path, curl_base_kb: int) -> dict[str, float]:
    folder.mkdir(parents=True)  # a fresh folder each run: nothing to resume, nothing current
    target = folder / "results.tar.gz"
    try:
        if variant == "curl":
            out, peak_kb = spawn(["curl", "-s", "-S", "-f", "-o", str(target), "-w", "%{time_total} %{size_download}", url])
            seconds, size = out.split()
            run = {"seconds": float(seconds), "bytes": int(size), "growth_mb": (peak_kb - curl_base_kb) * 1024 / MB}
        else:
            out, peak_kb = spawn([sys.executable, str(Path(__file__).resolve()), "_child", variant, url, str(target)])
            run = json.loads(out)
        run["peak_mb"] = peak_kb * 1024 / MB
        return run
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="size of the incompressible file in MiB")
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed as the reference")
    import requests

    import jobtask_widgets as jw

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp_name:
        tmp = Path(tmp_name)
        print(f"writing the store with a {args.mib} MiB incompressible file into {tmp} ...", flush=True)
        sample = write_store(tmp, args.mib)
        server, api = start_server(sample.root, tmp / "cache")
        try:
            client = jw.authenticate(api_url=api, project_id=sample.project_id, project_api_key=sample.project_api_key)
            url = client.results_url(sample.project_id, sample.job_id, sample.task_ids[0])
            started = time.perf_counter()
            head = requests.head(url, timeout=(10, 3600))  # the first request builds the .tar.gz
            head.raise_for_status()
            size = int(head.headers["Content-Length"])
            print(f"server {api}; archive built in {time.perf_counter() - started:.1f} s: {size / MB:.1f} MB")
            spawn(["curl", "-s", "-S", "-f", "-o", os.devnull, url])  # warm the page cache and the server
            _, curl_base_kb = spawn(["curl", "--version"])
            runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
            print(f"\n{'variant':8} {'run':>3} {'seconds':>8} {'MB/s':>8} {'RSS growth MB':>14} {'peak RSS MB':>12}")
            for i in range(1, args.runs + 1):
                for variant in VARIANTS:  # interleaved, so drifting noise hits every variant alike
                    run = one_run(variant, url, tmp / "runs" / f"{variant}-{i}", curl_base_kb)
                    if run["bytes"] != size:
                        raise RuntimeError(f"{variant} got {run['bytes']} bytes, the archive has {size}")
                    run["mbps"] = size / MB / run["seconds"]
                    runs[variant].append(run)
                    print(f"{variant:8} {i:>3} {run['seconds']:8.2f} {run['mbps']:8.1f} "
                          f"{run['growth_mb']:14.1f} {run['peak_mb']:12.1f}", flush=True)  # fmt: skip
        finally:
            stop_server(server)
    print(f"\n{'variant':8} {'best MB/s':>10} {'median MB/s':>12} {'max RSS growth MB':>18}")
    for variant, rs in runs.items():
        best, median = max(r["mbps"] for r in rs), statistics.median(r["mbps"] for r in rs)
        print(f"{variant:8} {best:10.1f} {median:12.1f} {max(r['growth_mb'] for r in rs):18.1f}")
    ratio = max(r["mbps"] for r in runs["ours"]) / max(r["mbps"] for r in runs["curl"])
    growth = max(r["growth_mb"] for r in runs["ours"])
    ok_speed, ok_rss = ratio >= TARGET_RATIO, growth < TARGET_RSS_MB
    print(f"\nours / curl throughput (best runs): {ratio:.2f}  target >= {TARGET_RATIO:.2f}  "
          f"{'PASS' if ok_speed else 'FAIL'}")  # fmt: skip
    print(f"ours RSS growth (worst run): {growth:.1f} MB  target < {TARGET_RSS_MB:.0f} MB  {'PASS' if ok_rss else 'FAIL'}")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0 if ok_speed and ok_rss else 1


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "_child":
        child(*sys.argv[2:])
    else:
        sys.exit(main())
