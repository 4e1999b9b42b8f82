"""Prove that the ORIGINAL client, PyPI ``up42-py`` 0.37.2, works unchanged against our server.

It writes the sample store, starts ``jobtask-widgets serve --port 0`` with the system Python
(which has fastapi), points up42-py's hard-coded ``https://api.up42.com`` at it by swapping
``up42.host.endpoint`` (the one function that joins the API host and a path; nothing else
about requests, headers, bodies or JSON is touched), then drives the documented JobTask calls
for every sample task and prints one PASS/FAIL line per call. It stops the server with SIGINT
and exits 1 when any call failed.

Run it from the venv that holds up42-py (not the system Python):

    python3 -m venv /tmp/up42venv && /tmp/up42venv/bin/pip install up42-py==0.37.2
    /tmp/up42venv/bin/python scripts/check_original_client.py [--server-python python3] [-v]

``-v`` also prints the server's access log (every request the original client sent).
``--store-url s3://bucket/prefix [--endpoint-url URL]`` uploads the sample there
(``jobtask-widgets upload``) and serves it from object storage instead of its folder; the
downloads are still compared with the folder's files.
"""

import argparse
import hashlib
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import warnings

PROJECT, API_KEY = "7b2ee4c5-1c0e-4a7a-9d54-1f1a6c9f2e31", "sample-api-key-not-a-secret"
JOB = "de5806aa-5ef1-4dc9-ab1d-06d7ec1a5021"
TASKS = [
    "3f772637-09aa-4164-bded-692fcd746d20",  # Landsat RGB
    "9c41d0e2-6b7a-4f35-8e2d-5a0b3c7d1e84",  # 4-band reflectance
    "b5e2c7d1-8f3a-4d6e-b9a0-1c2d3e4f5a6b",  # NDVI, one float32 band
]
USER, PASSWORD = "analyst", "sample-password"
failures = []


def check(name, fn):
    """Run one client call; print PASS with its key values or FAIL with the error."""
    try:
        detail = fn()
    except Exception as exc:  # every failure is a finding
        failures.append(name)
        print(f"FAIL {name}: {type(exc).__name__}: {str(exc)[:600]}", flush=True)
        return None
    print(f"PASS {name}: {detail}", flush=True)
    return detail


def start_server(python, workdir, store_url=None, endpoint_url=None):
    """Write the sample store and serve it: from its folder, or uploaded to ``store_url`` (S3)."""
    store = workdir / "store"
    subprocess.run([python, "-m", "jobtask_widgets.cli", "sample", str(store)], check=True, capture_output=True)
    served = [str(store)]
    if store_url:
        endpoint = ["--endpoint-url", endpoint_url] if endpoint_url else []
        upload = [python, "-m", "jobtask_widgets.cli", "upload", str(store), store_url, *endpoint]
        subprocess.run(upload, check=True, capture_output=True)
        served = [store_url, *endpoint]
    log = open(workdir / "server.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [python, "-m", "jobtask_widgets.cli", "serve", *served, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    for line in proc.stdout:
        if line.startswith("API: "):  # then keep draining stdout (uvicorn's access log) so it never blocks
            proc.access_log = []
            proc.drain = threading.Thread(target=lambda: proc.access_log.extend(proc.stdout), daemon=True)
            proc.drain.start()
            return proc, line.split()[1].rstrip("/"), store
    raise RuntimeError(f"server exited ({proc.wait()}): {(workdir / 'server.log').read_text()}")


def redirect(base):
    """Swap the API host for ``base`` in every up42 module that bound ``endpoint``."""
    import up42.host

    original = up42.host.endpoint

    def endpoint(path):
        return f"{base}{path}"

    for name, module in list(sys.modules.items()):
        if (name == "up42" or name.startswith("up42.")) and getattr(module, "endpoint", None) is original:
            module.endpoint = endpoint
    assert up42.host.endpoint("/x") == f"{base}/x"


def sha(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def drive_task(up42, task, store, out, project_id=None, label=""):
    tdir = store / "projects" / PROJECT / "jobs" / JOB / "tasks" / task
    pre = f"[{task[:8]}{label}]"
    jt = check(f"{pre} initialize_jobtask", lambda: up42.initialize_jobtask(task, JOB, project_id=project_id))
    if jt is None:
        return
    check(f"{pre} info", lambda: (lambda i: f"id={i['id']} status={i['status']} block={i['block']['name']}")(jt.info))
    check(f"{pre} repr", lambda: repr(jt))

    def results_json():
        fc = jt.get_results_json()
        assert fc["type"] == "FeatureCollection", fc.get("type")
        paths = sorted({f["properties"].get("up42.data_path") for f in fc["features"]} - {None})
        return f"{len(fc['features'])} features, data paths {paths}"

    def results_df():
        df = jt.get_results_json(as_dataframe=True)
        return f"{type(df).__name__} {len(df)} rows, crs={df.crs.to_string()}, columns={list(df.columns)[:6]}"

    def download_results():
        files = jt.download_results(out / task / "results")
        expected = {str(p.relative_to(tdir / "output")): sha(p) for p in (tdir / "output").rglob("*") if p.is_file()}
        got = {str(pathlib.Path(f).relative_to(out / task / "results")): sha(f) for f in files}
        assert got == expected, f"downloaded {sorted(got)} != store output/ {sorted(expected)} (or contents differ)"
        return f"{len(files)} files, identical to the store's output/: {sorted(got)}"

    def download_quicklooks():
        files = jt.download_quicklooks(out / task / "quicklooks")
        assert files, "no quicklooks"
        for f in files:
            src = tdir / "quicklooks" / pathlib.Path(f).name.removeprefix("quicklook_")
            assert sha(f) == sha(src), f"{f} differs from {src}"
        return f"{[pathlib.Path(f).name for f in files]}, bytes identical to the store's"

    check(f"{pre} get_results_json()", results_json)
    check(f"{pre} get_results_json(as_dataframe=True)", results_df)
    check(f"{pre} download_results", download_results)
    check(f"{pre} download_quicklooks", download_quicklooks)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-python", default=os.environ.get("SERVER_PYTHON", "python3"))
    parser.add_argument("-v", "--verbose", action="store_true", help="print the server's access log")
    parser.add_argument("--store-url", help="upload the sample there (s3://bucket/prefix) and serve it from there")
    parser.add_argument("--endpoint-url", help="the S3-compatible endpoint of --store-url")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # up42's deprecation notices about retired job tasks
    import up42

    print(f"up42-py {up42.__version__} on Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="up42check-") as tmp:
        workdir = pathlib.Path(tmp)
        proc, base, store = start_server(args.server_python, workdir, args.store_url, args.endpoint_url)
        try:
            print(f"server {base}")
            redirect(base)
            ok = check(
                "authenticate(project_id, project_api_key)",
                lambda: (
                    up42.authenticate(project_id=PROJECT, project_api_key=API_KEY)
                    or f"workspace_id={up42.main.get_auth_safely().workspace_id}"
                ),
            )
            if ok:
                for task in TASKS:
                    drive_task(up42, task, store, workdir / "out")
            ok = check(
                "authenticate(username, password)",
                lambda: (
                    up42.authenticate(username=USER, password=PASSWORD)
                    or f"workspace_id={up42.main.get_auth_safely().workspace_id}"
                ),
            )
            if ok:
                drive_task(up42, TASKS[0], store, workdir / "out-user", project_id=PROJECT, label=" user")
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=20)
            print(f"server stopped with SIGINT, exit code {code}")
            if args.verbose:
                proc.drain.join(5)
                print((workdir / "server.log").read_text() + "".join(proc.access_log))
    print(f"{'ALL PASS' if not failures else f'{len(failures)} FAILED: ' + ', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
