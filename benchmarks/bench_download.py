"""Benchmark: downloading a ~1 GiB results archive over loopback, ours against curl.

Builds a sample store whose first task holds an extra ~1 GiB of incompressible bytes, serves it
with ``jobtask-widgets serve`` in a subprocess, warms the archive cache (the build is timed
apart and not counted), then downloads the same signed URL in a fresh process per run:

- ``curl``:  ``curl -s -o FILE URL``, the reference;
- ``ours``:  ``jobtask_widgets.transfer.download`` with a fresh ``requests.Session()`` (no unpacking),
  hashing what it streams (SHA-256) and checking it against the server's ``Repr-Digest``;
- ``naive``: ``requests.get(url).content`` written to a file, to show the memory it costs.

Targets: ours >= 90 % of curl's throughput and <= 1.5x curl's CPU seconds per GB (medians of the
runs); ours grows its RSS by < 50 MB (worst run). Prints every run and a summary; exits 1 when a
target fails. It also times SHA-256 alone over the archive's size, once per run: curl's CPU plus
that is the least any client that verifies the digest can spend (on a machine whose SHA-256 runs
at about curl's whole copy cost, that floor is about 2x curl, above the CPU target).

    python benchmarks/bench_download.py [--mib 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from support import start_server, stop_server

if TYPE_CHECKING:
    from jobtask_widgets.sample import Sample

MB = 1_000_000
VARIANTS = ("curl", "ours", "naive")
TARGET_RATIO = 0.90
TARGET_CPU_RATIO = 1.5
TARGET_RSS_MB = 50.0
HEADER = f"{'variant':8} {'run':>3} {'seconds':>8} {'MB/s':>8} {'RSS growth MB':>14} {'peak RSS MB':>12} {'CPU s':>6}"
ROW = "{:8} {:>3} {seconds:8.2f} {mbps:8.1f} {growth_mb:14.1f} {peak_mb:12.1f} {cpu_s:6.2f}"


def _status_kb(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def child(variant: str, url: str, target: str) -> None:
    """One download in this process; print seconds, bytes, RSS growth and peak, CPU seconds as JSON."""
    import requests

    from jobtask_widgets.transfer import download

    session = requests.Session()
    with contextlib.suppress(OSError):  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5")
    before, cpu = _status_kb("VmRSS"), os.times()
    started = time.perf_counter()
    if variant == "ours":
        got = download(session, lambda: url, target, progress=False)
        assert got.fetched, "the download was skipped as current: the target folder was not fresh"
        assert got.digest_checked, "the server stated no digest: the download was not verified"
        size = got.size
    else:
        body = requests.get(url, timeout=(10, 600)).content
        Path(target).write_bytes(body)
        size = len(body)
    seconds, peak, cpu_s = time.perf_counter() - started, _status_kb("VmHWM"), sum(os.times()[:2]) - sum(cpu[:2])
    run = {"seconds": seconds, "bytes": size, "growth_mb": (peak - before) * 1024 / MB, "peak_mb": peak * 1024 / MB}
    run["cpu_s"] = cpu_s
    print(json.dumps(run))


def spawn(cmd: list[str]) -> str:
    """Run ``cmd`` and return its stdout."""
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited with {done.returncode}")
    return done.stdout


def curl_peak_kb(cmd: list[str], tmp: Path) -> tuple[str, float, float]:
    """Run curl under GNU time: stdout, own peak RSS in kB, CPU seconds (NaN without /usr/bin/time).

    GNU time, not wait4/RUSAGE_CHILDREN here: a child exec'd straight from this big process
    inherits its peak RSS as a floor, while curl forked from the tiny ``time`` process does not.
    """
    if not Path("/usr/bin/time").is_file():
        return spawn(cmd), float("nan"), float("nan")
    report = tmp / "time.txt"
    out = spawn(["/usr/bin/time", "-f", "%M %U %S", "-o", str(report), *cmd])
    peak_kb, user, system = map(float, report.read_text().split()[-3:])
    return out, peak_kb, user + system


def write_store(tmp: Path, mib: int) -> Sample:
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


def one_run(variant: str, url: str, folder: Path, curl_base_kb: float) -> dict[str, float]:
    folder.mkdir(parents=True)  # a fresh folder each run: nothing to resume, nothing current
    target = folder / "results.tar.gz"
    try:
        if variant == "curl":
            cmd = ["curl", "-s", "-S", "-f", "-o", str(target), "-w", "%{time_total} %{size_download}", url]
            out, peak_kb, cpu_s = curl_peak_kb(cmd, folder)
            seconds, size = out.split()
            growth, peak = max(0.0, peak_kb - curl_base_kb) * 1024 / MB, peak_kb * 1024 / MB  # 0: within noise
            return {"seconds": float(seconds), "bytes": int(size), "growth_mb": growth, "peak_mb": peak, "cpu_s": cpu_s}
        cmd = [sys.executable, str(Path(__file__).resolve()), "_child", variant, url, str(target)]
        return dict(json.loads(spawn(cmd)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sha256_cpu_s(nbytes: int) -> float:
    """CPU seconds this process spends on SHA-256 over ``nbytes`` (1 MiB chunks, as a download hashes)."""
    chunk = os.urandom(1 << 20)
    digest = hashlib.sha256()
    before = os.times()
    for _ in range(nbytes // len(chunk)):
        digest.update(chunk)
    after = os.times()
    return (after.user - before.user) + (after.system - before.system)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="size of the incompressible file in MiB")
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on kill as on Ctrl-C
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed as the reference")
    import requests

    import jobtask_widgets as jw

    t0 = time.perf_counter()
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    hashing: list[float] = []  # CPU seconds of SHA-256 alone over the archive's size, once per run
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp_name:
        tmp = Path(tmp_name)
        print(f"writing the store with a {args.mib} MiB incompressible file into {tmp} ...", flush=True)
        sample = write_store(tmp, args.mib)
        server, api = start_server(sample.root, tmp / "cache", "--url-ttl", "3600")
        try:
            client = jw.authenticate(api_url=api, project_id=sample.project_id, project_api_key=sample.project_api_key)
            url = client.results_url(sample.project_id, sample.job_id, sample.task_ids[0])
            started = time.perf_counter()
            head = requests.head(url, timeout=(10, 3600))  # the first request builds the .tar.gz
            head.raise_for_status()
            size = int(head.headers["Content-Length"])
            print(f"server {api}; archive built in {time.perf_counter() - started:.1f} s: {size / MB:.1f} MB")
            spawn(["curl", "-s", "-S", "-f", "-o", os.devnull, url])  # warm the page cache and the server
            _, curl_base_kb, _ = curl_peak_kb(["curl", "-s", "-o", os.devnull, api + "/"], tmp)  # a tiny answer
            print("\n" + HEADER)
            for i in range(1, args.runs + 1):
                for variant in VARIANTS:  # interleaved, so drifting noise hits every variant alike
                    run = one_run(variant, url, tmp / "runs" / f"{variant}-{i}", curl_base_kb)
                    if run["bytes"] != size:
                        raise RuntimeError(f"{variant} got {run['bytes']} bytes, the archive has {size}")
                    run["mbps"] = size / MB / run["seconds"]
                    runs[variant].append(run)
                    print(ROW.format(variant, i, **run), flush=True)
                hashing.append(sha256_cpu_s(size))
        finally:
            stop_server(server)
    print(f"\n{'variant':8} {'best MB/s':>10} {'median MB/s':>12} {'max RSS growth MB':>18} {'median CPU s/GB':>16}")
    gb = size / 1e9
    for variant, rs in runs.items():
        best, median = max(r["mbps"] for r in rs), statistics.median(r["mbps"] for r in rs)
        cpu = statistics.median(r["cpu_s"] for r in rs) / gb
        print(f"{variant:8} {best:10.1f} {median:12.1f} {max(r['growth_mb'] for r in rs):18.1f} {cpu:16.2f}")
    ratio = statistics.median(r["mbps"] for r in runs["ours"]) / statistics.median(r["mbps"] for r in runs["curl"])
    best = max(r["mbps"] for r in runs["ours"]) / max(r["mbps"] for r in runs["curl"])
    cpu_ratio = statistics.median(r["cpu_s"] for r in runs["ours"]) / statistics.median(
        r["cpu_s"] for r in runs["curl"]
    )
    growth = max(r["growth_mb"] for r in runs["ours"])
    ok_speed, ok_cpu, ok_rss = ratio >= TARGET_RATIO, cpu_ratio <= TARGET_CPU_RATIO, growth < TARGET_RSS_MB
    verdicts = ["PASS" if ok else "FAIL" for ok in (ok_speed, ok_cpu, ok_rss)]
    print(f"\nours / curl throughput: median {ratio:.2f} (best {best:.2f})  target >= {TARGET_RATIO}  {verdicts[0]}")
    print(
        f"ours / curl CPU seconds (medians), hashing on: {cpu_ratio:.2f}  target <= {TARGET_CPU_RATIO}  {verdicts[1]}"
    )
    print(f"ours RSS growth (worst run): {growth:.1f} MB  target < {TARGET_RSS_MB:.0f} MB  {verdicts[2]}")
    curl_cpu, hash_cpu = statistics.median(r["cpu_s"] for r in runs["curl"]), statistics.median(hashing)
    print(
        f"SHA-256 alone: {hash_cpu / gb:.2f} CPU s/GB, so curl + SHA-256 would be "
        f"{(curl_cpu + hash_cpu) / curl_cpu:.2f}x curl's CPU (the floor for any hashing client)"
    )
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0 if ok_speed and ok_cpu and ok_rss else 1


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "_child":
        child(*sys.argv[2:])
    else:
        sys.exit(main())
