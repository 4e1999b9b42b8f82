"""The first map view of a large COG read in place from the server, beside download-then-map.

bench_raster.py's Sentinel-2-like tile (10,980 x 10,980, 4 bands, uint16) is published as a
task with ``jobtask_widgets.publish`` (a COG, deflate, internal overviews) and served in this
process behind an ASGI wrapper that waits 20 ms before every request (a network's round trip)
and counts every request and body byte. Each variant runs in a fresh process, logged in with
the documented API:

- ``remote-map``: ``task.results_view()`` with nothing downloaded (the server's rasters, read
  in place), then every tile of the zoom the map opens at, rendered as the tile layer renders
  them (PNG, 4 worker threads), statistics included;
- ``remote-plot``: ``task.plot_results()`` with nothing downloaded (matplotlib, Agg);
- ``download-map``: ``task.download_results()`` then the same view and tiles from the files.

Per run: seconds, requests and bytes the server sent, and the process's peak RSS growth over
its state after the imports and the login.

    python benchmarks/bench_remote.py [--runs 3] [--size 10980] [--delay 0.02]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CHILD = r"""
import json, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
import matplotlib
matplotlib.use("Agg")
import morecantile
import jobtask_widgets as jw
from jobtask_widgets.tilelayer import WORKERS

variant, api, key = sys.argv[1], sys.argv[2], sys.argv[3]

def status_kb(name):
    for line in open("/proc/self/status"):
        if line.startswith(name):
            return int(line.split()[1])
    return 0

jw.authenticate(api_url=api, project_id="bench", project_api_key=key)
task = jw.initialize_jobtask("task", "job")
open("/proc/self/clear_refs", "w").write("5")  # the peak from here on
before = status_kb("VmRSS:")
t0 = time.perf_counter()
tiles = 0
if variant == "remote-plot":
    task.plot_results(figsize=(10, 8))
else:
    folder = tempfile.mkdtemp(prefix="bench-remote-dl-")
    if variant == "download-map":
        task.download_results(folder, progress=False)
    with task.results_view() as view:
        (state,) = view.rasters.values()
        west, south, east, north = state.source.require_crs("tiles")
        grid = list(morecantile.tms.get("WebMercatorQuad").tiles(west, south, east, north, [view.zoom]))
        with ThreadPoolExecutor(WORKERS) as pool:
            drawn = list(pool.map(lambda t: state.source.tile(t.z, t.x, t.y, state.style), grid))
        tiles = sum(d is not None for d in drawn)
    __import__("shutil").rmtree(folder)
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "tiles": tiles, "peak_mb": (status_kb("VmHWM:") - before) / 1024}))
"""

VARIANTS = ("remote-map", "remote-plot", "download-map")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=10_980)
    parser.add_argument("--delay", type=float, default=0.02, help="seconds added before every request")
    args = parser.parse_args()

    from bench_raster import write_rasters
    from support import Counting

    from jobtask_widgets.publish import publish
    from jobtask_widgets.server.app import create_app
    from jobtask_widgets.server.run import BackgroundServer

    work = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    server = None
    try:
        t0 = time.perf_counter()
        plain, _ = write_rasters(work, args.size, seed=11, overviews=False)
        source = work / "outputs"
        source.mkdir()
        plain.rename(source / "s2_like.tif")
        publish(source, work / "store", project_id="bench", job_id="job", task_id="task", name="s2-like")
        shutil.rmtree(source)
        cog = work / "store/projects/bench/jobs/job/tasks/task/output/s2_like.tif"
        size = cog.stat().st_size
        print(f"COG of {size / 1e6:.0f} MB ready in {time.perf_counter() - t0:.0f} s", flush=True)
        key = json.loads((work / "store" / "credentials.json").read_text())["project_api_key"]
        counting = Counting(create_app(work / "store"), delay=args.delay)
        server = BackgroundServer(counting).start()  # type: ignore[arg-type]
        token = requests.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials"},
                              auth=("bench", key), timeout=30).json()["access_token"]  # fmt: skip
        files = f"{server.url}/projects/bench/jobs/job/tasks/task/outputs/files/"
        requests.get(files, headers={"Authorization": f"Bearer {token}"}, timeout=600)  # the digest, once
        results: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
        for run in range(1, args.runs + 1):
            for variant in VARIANTS:
                counting.reset()
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, variant, server.url, key],
                    capture_output=True, text=True, timeout=1800,
                )  # fmt: skip
                if out.returncode != 0:
                    print(out.stderr[-3000:], file=sys.stderr)
                    return 1
                measured = json.loads(out.stdout.strip().splitlines()[-1])
                measured |= {"requests": counting.requests, "bytes": counting.bytes}
                results[variant].append(measured)
                print(
                    f"run {run} {variant:13s} {measured['seconds']:7.2f} s  {measured['tiles']:3d} tiles  "
                    f"{measured['requests']:4d} requests  {measured['bytes'] / 1e6:9.2f} MB  "
                    f"peak +{measured['peak_mb']:7.1f} MB",
                    flush=True,
                )
        print(f"\nCOG: {size / 1e6:.1f} MB; {args.delay * 1000:.0f} ms added to every request\n")
        print(f"{'variant':13s} {'median s':>9s} {'requests':>9s} {'MB sent':>9s} {'of file':>8s} {'peak MB':>8s}")
        medians = {}
        for variant, runs in results.items():
            m = {k: statistics.median(r[k] for r in runs) for k in ("seconds", "requests", "bytes", "peak_mb")}
            medians[variant] = m
            print(f"{variant:13s} {m['seconds']:9.2f} {m['requests']:9.0f} {m['bytes'] / 1e6:9.2f} "
                  f"{m['bytes'] / size:8.2%} {m['peak_mb']:8.1f}")  # fmt: skip
        targets = {
            "remote first view under 2 s": medians["remote-map"]["seconds"] < 2.0,
            "remote first view reads under 2 % of the file": medians["remote-map"]["bytes"] / size < 0.02,
            "remote plot_results under 2 s": medians["remote-plot"]["seconds"] < 2.0,
        }
        print()
        for name, ok in targets.items():
            print(f"{'PASS' if ok else 'FAIL'} {name}")
        speedup = medians["download-map"]["seconds"] / medians["remote-map"]["seconds"]
        print(f"remote-map is {speedup:.0f}x faster than download-map")
        return 0 if all(targets.values()) else 1
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
