"""Benchmark: ``get_results_json(as_dataframe=True)`` on a 100,000-feature data.json.

Writes a seeded FeatureCollection (Points and small Polygons; uid, class, score, count, date and,
on one feature in ten, ``up42.data_path``) as the first sample task's ``output/data.json``,
serves the store with ``jobtask-widgets serve`` in a subprocess, checks once that both
conversions give equal frames, then times each variant in a fresh process per run:

- ``http-ours``:  ``task.get_results_json(as_dataframe=True)`` through the real client;
- ``http-naive``: ``client.data_json(...)``, then ``json.loads`` + ``GeoDataFrame.from_features``;
- ``disk-ours``:  ``features.to_geodataframe(data)`` on the bytes read from disk (no HTTP);
- ``disk-naive``: ``json.loads`` + ``GeoDataFrame.from_features`` on the same bytes.

Imports and GDAL's first use are warmed in every child before its timer starts.
Target: http-ours <= 0.5 x http-naive (best runs). Exits 1 when it fails.

    python benchmarks/bench_results_json.py [--features 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from support import start_server, stop_server

VARIANTS = ("http-ours", "http-naive", "disk-ours", "disk-naive")
TARGET = 0.5
CLASSES = ("building", "vessel", "cloud", "car", "tree", "solar panel")


def make_collection(n: int, seed: int) -> bytes:
    """A FeatureCollection of ``n`` features, the same bytes for the same seed."""
    rng = random.Random(seed)
    features = []
    for i in range(n):
        lon, lat = rng.uniform(5.0, 15.0), rng.uniform(45.0, 55.0)
        if rng.random() < 0.4:
            geometry: dict[str, Any] = {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]}
        else:
            sides = rng.randint(3, 6)
            ring = [[round(lon + rng.uniform(0, 1e-3), 6), round(lat + rng.uniform(0, 1e-3), 6)] for _ in range(sides)]
            geometry = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
        props: dict[str, Any] = {
            "uid": f"det-{i:06d}",
            "class": rng.choice(CLASSES),
            "score": round(rng.random(), 4),
            "count": rng.randint(0, 500),
            "date": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        }
        if i % 10 == 0:
            props["up42.data_path"] = f"scene-{i // 1000:03d}/tile_{i:06d}.tif"
        features.append({"type": "Feature", "geometry": geometry, "properties": props})
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


def naive(data: bytes) -> Any:
    import geopandas

    return geopandas.GeoDataFrame.from_features(json.loads(data), crs="EPSG:4326")


def child(variant: str, url: str, path: str) -> None:
    """Time one variant in this process; print the seconds as JSON."""
    import jobtask_widgets as jw
    from jobtask_widgets.features import to_geodataframe
    from jobtask_widgets.sample import SAMPLE_API_KEY, SAMPLE_JOB_ID, SAMPLE_PROJECT_ID, SAMPLE_RGB_TASK

    tiny = make_collection(3, 0)
    to_geodataframe(tiny)  # warm the imports and GDAL's drivers, outside the timer
    naive(tiny)
    if variant.startswith("http"):
        client = jw.authenticate(api_url=url, project_id=SAMPLE_PROJECT_ID, project_api_key=SAMPLE_API_KEY)
        task = jw.initialize_jobtask(SAMPLE_RGB_TASK, SAMPLE_JOB_ID)
    else:
        data = Path(path).read_bytes()
    started = time.perf_counter()
    if variant == "http-ours":
        frame = task.get_results_json(as_dataframe=True)
    elif variant == "http-naive":
        frame = naive(client.data_json(SAMPLE_PROJECT_ID, SAMPLE_JOB_ID, SAMPLE_RGB_TASK))
    elif variant == "disk-ours":
        frame = to_geodataframe(data)
    else:
        frame = naive(data)
    print(json.dumps({"seconds": time.perf_counter() - started, "rows": len(frame)}))


def verify(data: bytes) -> str:
    """Check once that both conversions agree; say which way ``to_geodataframe`` went."""
    from geopandas.testing import assert_geodataframe_equal

    from jobtask_widgets import features

    exact = features._exact
    calls: list[bytes] = []

    def counted(raw: bytes) -> Any:
        calls.append(raw)
        return exact(raw)

    features._exact = counted
    try:
        ours = features.to_geodataframe(data)
    finally:
        features._exact = exact
    assert_geodataframe_equal(ours, naive(data), check_like=True)
    return "the exact fallback (json.loads + from_features)" if calls else "GDAL (pyogrio), no fallback"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=100_000, help="features in data.json")
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on kill as on Ctrl-C
    from jobtask_widgets.sample import write_sample

    t0 = time.perf_counter()
    runs: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-results-json-") as tmp:
        sample = write_sample(Path(tmp) / "store")
        data = make_collection(args.features, args.seed)
        path = sample.task_dir(sample.task_ids[0]) / "output" / "data.json"
        path.write_bytes(data)
        print(f"data.json: {args.features} features, {len(data) / 1e6:.1f} MB, seed {args.seed}")
        print(f"frames equal (assert_geodataframe_equal, check_like); to_geodataframe took {verify(data)}")
        server, url = start_server(sample.root, sample.root.parent / "cache")
        try:
            print(f"server {url}\n\n{'variant':11} {'run':>3} {'seconds':>8} {'rows':>7}")
            for i in range(1, args.runs + 1):
                for variant in VARIANTS:  # interleaved, so drifting noise hits every variant alike
                    cmd = [sys.executable, str(Path(__file__).resolve()), "_child", variant, url, str(path)]
                    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
                    run = json.loads(done.stdout)
                    if run["rows"] != args.features:
                        raise RuntimeError(f"{variant} gave {run['rows']} rows, not {args.features}")
                    runs[variant].append(run["seconds"])
                    print(f"{variant:11} {i:>3} {run['seconds']:8.3f} {run['rows']:>7}", flush=True)
        finally:
            stop_server(server)
    print(f"\n{'variant':11} {'best s':>8} {'median s':>9}")
    for variant, seconds in runs.items():
        print(f"{variant:11} {min(seconds):8.3f} {statistics.median(seconds):9.3f}")
    ok = True
    for kind in ("http", "disk"):
        ratio = min(runs[f"{kind}-ours"]) / min(runs[f"{kind}-naive"])
        median = statistics.median(runs[f"{kind}-ours"]) / statistics.median(runs[f"{kind}-naive"])
        verdict = "PASS" if ratio <= TARGET else "FAIL"
        label = "target" if kind == "http" else "same target, for information"
        print(f"{kind}: ours / naive = best {ratio:.2f} (median {median:.2f})  {label}: <= {TARGET}  {verdict}")
        ok = ok and (ratio <= TARGET or kind == "disk")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "_child":
        child(*sys.argv[2:])
    else:
        sys.exit(main())
