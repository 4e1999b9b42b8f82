"""Reading a COG in place through the server's signed file URL, beside fetching the whole file.

A 10,980 x 10,980, 4-band uint16 raster (bench_raster.py's Sentinel-2-like tile, without
overviews) is published as a task with ``jobtask_widgets.publish`` (which converts it to a COG:
deflate, 512 px tiles, internal overviews); the reference server serves the store in this
process, in a thread, behind an ASGI wrapper that counts the requests to ``/files/`` and the
body bytes it sends. Every measured read runs in a fresh process (an empty GDAL cache), and each
run asks ``outputs/files/`` for a new signed URL:

- ``ours-window``: ``rasterio.open(url)`` under GDAL's HTTP settings for COGs (no directory
  listing, merged consecutive ranges, HTTP/2 multiplexing where offered) and one 256 x 256
  window of all 4 bands at full resolution, in the middle;
- ``ours-overview``: the same open and the whole raster read at 256 x 256 (the smallest overview);
- ``naive``: ``requests.get(url, stream=True)`` of the whole file to disk, then the same window
  read locally.

Per run: seconds (open + read, or download + read), requests to ``/files/`` and bytes sent.
The window values of the two ways are compared (they must be equal).

    python benchmarks/bench_vsicurl.py [--runs 3] [--size 10980]
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

GDAL_HTTP = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",  # HTTP/2 streams where the server offers them (https); plain http stays 1.1
}

CHILD = r"""
import hashlib, json, sys, time
import numpy as np, rasterio, requests
from rasterio.windows import Window
variant, url, size, scratch = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
env = json.loads(sys.argv[5])
window = Window(size // 2 - 128, size // 2 - 128, 256, 256)
t0 = time.perf_counter()
if variant == "naive":
    with requests.get(url, stream=True, timeout=600) as answer, open(scratch, "wb") as out:
        answer.raise_for_status()
        for chunk in answer.iter_content(1 << 20):
            out.write(chunk)
    with rasterio.open(scratch) as src:
        data = src.read(window=window)
else:
    with rasterio.Env(**env), rasterio.open(url) as src:
        data = src.read(window=window) if variant == "ours-window" else src.read(out_shape=(src.count, 256, 256))
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "sha": hashlib.sha256(data.tobytes()).hexdigest(), "shape": list(data.shape)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=10_980)
    args = parser.parse_args()

    from bench_raster import write_rasters
    from support import Counting

    from jobtask_widgets.publish import publish
    from jobtask_widgets.server.app import create_app
    from jobtask_widgets.server.run import BackgroundServer

    work = Path(tempfile.mkdtemp(prefix="bench-vsicurl-"))
    server = None
    try:
        t0 = time.perf_counter()
        plain, _ = write_rasters(work, args.size, seed=7, overviews=False)
        print(
            f"wrote {plain.name}: {plain.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s", flush=True
        )
        source = work / "outputs"
        source.mkdir()
        plain.rename(source / "s2_like.tif")
        store = work / "store"
        t0 = time.perf_counter()
        publish(source, store, project_id="bench", job_id="job", task_id="task", name="s2-like")
        cog = store / "projects/bench/jobs/job/tasks/task/output/s2_like.tif"
        print(f"published as a COG: {cog.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s", flush=True)
        shutil.rmtree(source)
        credentials = json.loads((store / "credentials.json").read_text())
        counting = Counting(create_app(store), prefix="/files/")
        server = BackgroundServer(counting).start()  # type: ignore[arg-type]
        token = requests.post(
            f"{server.url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("bench", credentials["project_api_key"]),
            timeout=30,
        ).json()["access_token"]
        files_url = f"{server.url}/projects/bench/jobs/job/tasks/task/outputs/files/"

        def fresh_url() -> str:
            listed = requests.get(files_url, headers={"Authorization": f"Bearer {token}"}, timeout=600).json()["data"]
            return str(next(f["url"] for f in listed if f["path"] == "s2_like.tif"))

        fresh_url()  # the digest is computed once per file version: not part of any run
        results: dict[str, list[dict[str, Any]]] = {"ours-window": [], "ours-overview": [], "naive": []}
        for run in range(1, args.runs + 1):
            for variant in results:
                url = f"{fresh_url()}&run={run}"  # a URL GDAL has never seen: nothing cached
                counting.reset()
                scratch = work / "download.tif"
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, variant, url, str(args.size), str(scratch), json.dumps(GDAL_HTTP)],
                    capture_output=True, text=True, check=True, timeout=900,
                )  # fmt: skip
                scratch.unlink(missing_ok=True)
                measured = json.loads(out.stdout.strip().splitlines()[-1])
                measured |= {"requests": counting.requests, "bytes": counting.bytes}
                results[variant].append(measured)
                print(
                    f"run {run} {variant:14s} {measured['seconds']:7.3f} s  {measured['requests']:4d} requests  "
                    f"{measured['bytes'] / 1e6:10.3f} MB",
                    flush=True,
                )
        same = {r["sha"] for r in results["ours-window"]} == {r["sha"] for r in results["naive"]}
        print(f"\nwindow values equal through the URL and from the downloaded file: {same}")
        size = cog.stat().st_size
        print(f"file: {size / 1e6:.1f} MB\n")
        print(f"{'variant':14s} {'median s':>9s} {'requests':>9s} {'MB sent':>10s} {'share of file':>14s}")
        for variant, runs in results.items():
            seconds = statistics.median(r["seconds"] for r in runs)
            reqs = statistics.median(r["requests"] for r in runs)
            sent = statistics.median(r["bytes"] for r in runs)
            print(f"{variant:14s} {seconds:9.3f} {reqs:9.0f} {sent / 1e6:10.3f} {sent / size:13.4%}")
        window = statistics.median(r["seconds"] for r in results["ours-window"])
        naive = statistics.median(r["seconds"] for r in results["naive"])
        fewer = statistics.median(r["bytes"] for r in results["naive"]) / statistics.median(
            r["bytes"] for r in results["ours-window"]
        )
        print(f"\nours-window: {naive / window:.0f}x faster than fetching the whole file, {fewer:.0f}x fewer bytes")
        return 0 if same else 1
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
