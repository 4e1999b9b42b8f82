"""Benchmark: the reference server under load, 1 worker against 4, side by side in one run.

``jobtask-widgets sample`` writes the sample store once; for each worker count, ``jobtask-widgets
serve ROOT --port 0 --workers N --secret S --log-level warning`` runs as a subprocess (its output
to a log file, never a pipe that can fill up; ``--log-level warning`` switches the access log off,
which otherwise writes one line per request), on a cache folder of its own. The script logs in
once (``POST /oauth/token``, the project key: with N > 1 any worker issues the token and every
worker accepts it, through the shared secret), looks up the routes (the tasks, their quicklooks,
``outputs/files/`` for the signed file URLs, ``downloads/results/`` for the signed archive URLs),
and fetches each task's archive once in full, so the timed load never pays for its build.

Then ``--clients`` threads, each with its own ``requests.Session`` (one kept-alive connection),
send requests back to back for ``--warmup`` seconds (not counted) and ``--seconds`` seconds
(counted: every request that completes in the window). Each request is drawn at random, with
equal weights, from:

- ``tasks``: ``GET /projects/{p}/jobs/{j}/tasks/`` (bearer token), 200;
- ``data-json``: ``GET .../tasks/{t}/outputs/data-json/`` of a random task, 200;
- ``quicklook``: ``GET .../tasks/{t}/outputs/quicklooks/{name}`` of a random task (the image), 200;
- ``file-range``: a signed file URL of a random result file, ``Range`` of ``--range-kib`` KiB at a
  random offset, 206 with exactly the bytes asked for;
- ``archive-range``: a task's signed archive URL, the same kind of ``Range``, 206 likewise.

Anything else (another status, a short range, a transport error) is an error; the first few are
printed, and any error makes the script exit 1. Per worker count: requests/s, p50/p95/p99 latency
(send to last body byte, as the client sees it), errors, the server's peak RSS (the sum over its
process tree, the supervisor and its workers, sampled every 0.2 s, warm-up included), and the CPU
seconds of the server's tree, of this client process and of the whole machine during the window,
so the note can say what limits throughput. The client runs on the same machine: its CPU is not
the server's, and a busy machine (anything else running) shows in the 'other CPU' column and a
warning.

    python benchmarks/bench_server_load.py [--clients 50] [--seconds 60] [--warmup 5] [--workers 1,4]
        [--range-kib 64] [--kinds tasks,data-json,...] [--server-cpus 0] [--seed 1] [--quick]

``--quick`` is a smoke run (10 clients, 1 + 5 s); ``--kinds`` narrows the mix (one kind at a time gives
each route's cost); ``--server-cpus`` runs the server under ``taskset -c``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

KINDS = ("tasks", "data-json", "quicklook", "file-range", "archive-range")
SAMPLE_INTERVAL = 0.2
SHOWN_ERRORS = 5
TIMEOUT = 30.0
OTHER_CPU_WARNING = 0.25  # cores

psutil: Any
try:
    import psutil  # type: ignore[import-untyped,no-redef]  # no stubs in the venv
except ImportError:  # read /proc instead
    psutil = None


# -- the server's process tree: RSS and CPU ----------------------------------------------------------------


def tree(pid: int) -> list[int]:
    """``pid`` and every descendant of it."""
    if psutil is not None:
        try:
            root = psutil.Process(pid)
            return [pid, *(p.pid for p in root.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in children.read_text().split()]
    return found


def rss_bytes(pid: int) -> int:
    """The resident set size of ``pid`` (0 when it is gone)."""
    if psutil is not None:
        try:
            return int(psutil.Process(pid).memory_info().rss)
        except psutil.NoSuchProcess:
            return 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (``None`` when it is gone)."""
    if psutil is not None:
        try:
            times = psutil.Process(pid).cpu_times()
            return float(times.user + times.system)
        except psutil.NoSuchProcess:
            return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # guest time is already in user


class RssSampler:
    """Samples the summed RSS of a process tree every :data:`SAMPLE_INTERVAL` s; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = tree(self.pid)
            total = sum(rss_bytes(p) for p in pids)
            if total > self.peak:
                self.peak, self.peak_processes = total, len(pids)
            self._stop.wait(SAMPLE_INTERVAL)


# -- the server ----------------------------------------------------------------------------------------------


def cli() -> list[str]:
    """The ``jobtask-widgets`` command of this interpreter's environment."""
    script = Path(sys.executable).parent / "jobtask-widgets"
    return [str(script)] if script.exists() else [sys.executable, "-m", "jobtask_widgets.cli"]


@dataclass
class SampleLogin:
    project: str
    job: str
    api_key: str


def write_sample(root: Path) -> SampleLogin:
    """``jobtask-widgets sample ROOT``; the login it prints."""
    out = subprocess.run([*cli(), "sample", str(root)], capture_output=True, text=True, check=True).stdout
    ids = re.search(r"project (\S+), job (\S+)", out)
    key = re.search(r"API key (\S+?);", out)
    if ids is None or key is None:
        raise RuntimeError(f"cannot read the sample's login from:\n{out}")
    return SampleLogin(ids.group(1), ids.group(2), key.group(1))


class Server:
    """``jobtask-widgets serve`` with ``workers`` workers, its output in ``log``."""

    def __init__(self, root: Path, cache: Path, log: Path, workers: int, secret: str, cpus: str | None) -> None:
        pin = ["taskset", "-c", cpus] if cpus else []
        cmd = [*pin, *cli(), "serve", str(root), "--host", "127.0.0.1", "--port", "0", "--workers", str(workers),
               "--secret", secret, "--cache-dir", str(cache), "--url-ttl", "3600",
               "--log-level", "warning"]  # fmt: skip
        self.log = log
        self._out = open(log, "w")  # noqa: SIM115  # closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.url = self._wait_listening(60.0)

    def _wait_listening(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text()
            found = re.search(r"^API: (\S+)$", text, re.M)
            if found and "Press Ctrl-C" in text:
                return found.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not start; its output:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Ctrl-C, as a user stops it; SIGKILL to what is left of its tree if that takes over 30 s."""
        pids = tree(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()

    def problems(self) -> list[str]:
        """Lines of its log other than the banner and INFO messages (its archive builds): warnings, errors."""
        ignored = ("API: ", "Press Ctrl-C", "Accepts:", " ", "INFO:")
        return [line for line in self.log.read_text().splitlines() if line and not line.startswith(ignored)]

    def names(self) -> dict[int, str]:
        """What each process of its tree is (while it runs)."""
        named = {}
        pids = tree(self.proc.pid)
        for pid in pids:
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                named[pid] = ("resource tracker" if "resource_tracker" in cmdline else "worker" if pid != self.proc.pid
                              else "supervisor" if len(pids) > 1 else "server")  # fmt: skip
        return named


# -- the load -----------------------------------------------------------------------------------------------


@dataclass
class Targets:
    """What the clients ask for, looked up once per server."""

    headers: dict[str, str]
    tasks: str
    data_json: list[str]
    quicklooks: list[str]
    files: list[tuple[str, int]]  # signed URL, size
    archives: list[tuple[str, int]]
    archive_build_s: list[float] = field(default_factory=list)
    kinds: tuple[str, ...] = KINDS


def look_up(url: str, login: SampleLogin) -> Targets:
    answer = requests.post(f"{url}/oauth/token", data={"grant_type": "client_credentials"},
                           auth=(login.project, login.api_key), timeout=TIMEOUT)  # fmt: skip
    answer.raise_for_status()
    headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def get(path: str) -> Any:
        done = requests.get(path, headers=headers, timeout=TIMEOUT)
        done.raise_for_status()
        return done.json()

    job = f"{url}/projects/{login.project}/jobs/{login.job}"
    task_ids = [t["id"] for t in get(f"{job}/tasks/")["data"]]
    targets = Targets(headers, f"{job}/tasks/", [], [], [], [])
    for task_id in task_ids:
        task = f"{job}/tasks/{task_id}"
        targets.data_json.append(f"{task}/outputs/data-json/")
        targets.quicklooks += [
            f"{task}/outputs/quicklooks/{name}" for name in get(f"{task}/outputs/quicklooks/")["data"]
        ]
        targets.files += [(f["url"], int(f["size"])) for f in get(f"{task}/outputs/files/")["data"]]
        archive = get(f"{task}/downloads/results/")["data"]["url"]
        started = time.perf_counter()
        whole = requests.get(archive, timeout=300)  # the first request builds the archive: not timed below
        whole.raise_for_status()
        targets.archive_build_s.append(time.perf_counter() - started)
        targets.archives.append((archive, len(whole.content)))
    return targets


@dataclass
class Record:
    kind: str
    ended: float  # time.perf_counter()
    seconds: float
    ok: bool
    nbytes: int


@dataclass
class Failure:
    kind: str
    ended: float
    what: str


def without_query(url: str) -> str:
    return url.split("?", 1)[0]


def client(index: int, seed: int, targets: Targets, range_bytes: int, stop: threading.Event,
           records: list[Record], failures: list[Failure]) -> None:  # fmt: skip
    """Send requests back to back until ``stop``; append to ``records`` and ``failures`` (own lists)."""
    rng = random.Random(seed * 100_003 + index)
    with requests.Session() as session:
        while not stop.is_set():
            kind = rng.choice(targets.kinds)
            headers: dict[str, str] = {}
            expected_length: int | None = None
            if kind in ("tasks", "data-json", "quicklook"):
                headers = targets.headers
                url = {"tasks": lambda: targets.tasks, "data-json": lambda: rng.choice(targets.data_json),
                       "quicklook": lambda: rng.choice(targets.quicklooks)}[kind]()  # fmt: skip
            else:
                url, size = rng.choice(targets.files if kind == "file-range" else targets.archives)
                start = rng.randrange(size)
                end = min(size, start + range_bytes) - 1
                headers = {"Range": f"bytes={start}-{end}"}
                expected_length = end - start + 1
            started = time.perf_counter()
            try:
                answer = session.get(url, headers=headers, timeout=TIMEOUT)
                body = answer.content
            except requests.RequestException as exc:
                ended = time.perf_counter()
                records.append(Record(kind, ended, ended - started, False, 0))
                failures.append(Failure(kind, ended, f"{type(exc).__name__}: {exc} ({without_query(url)})"))
                continue
            ended = time.perf_counter()
            if expected_length is None:
                ok = answer.status_code == 200 and len(body) > 0
            else:
                ok = answer.status_code == 206 and len(body) == expected_length
            records.append(Record(kind, ended, ended - started, ok, len(body)))
            if not ok:
                failures.append(Failure(kind, ended, f"{answer.status_code} {len(body)} B "
                                        f"(want {expected_length or 'a body'}) {without_query(url)} "
                                        f"{headers.get('Range', '')} {body[:200]!r}"))  # fmt: skip


@dataclass
class Result:
    workers: int
    window_s: float
    records: list[Record]
    failures: list[Failure]
    warmup_failures: list[Failure]
    peak_rss: int
    peak_processes: int
    server_cpu_s: float
    server_cpu_by_pid: dict[int, float]
    process_names: dict[int, str]
    client_cpu_s: float
    machine_busy_s: float
    archive_build_s: list[float]
    log_problems: list[str]

    @property
    def other_cpu_s(self) -> float:
        """The machine's busy CPU seconds that were neither the server's nor this process's."""
        return self.machine_busy_s - self.server_cpu_s - self.client_cpu_s


def cpu_snapshot(pid: int) -> dict[int, float]:
    return {p: s for p in tree(pid) if (s := cpu_seconds(p)) is not None}


def run_load(server: Server, targets: Targets, clients: int, warmup: float, seconds: float, range_bytes: int,
             seed: int) -> Result:  # fmt: skip
    stop = threading.Event()
    per_client: list[tuple[list[Record], list[Failure]]] = [([], []) for _ in range(clients)]
    threads = [threading.Thread(target=client, args=(i, seed, targets, range_bytes, stop, *per_client[i]),
                                name=f"client-{i}", daemon=True) for i in range(clients)]  # fmt: skip
    with RssSampler(server.proc.pid) as sampler:
        for thread in threads:
            thread.start()
        time.sleep(warmup)
        names = server.names()
        cpu0, client0, machine0, t0 = (cpu_snapshot(server.proc.pid), time.process_time(), machine_busy_seconds(),
                                       time.perf_counter())  # fmt: skip
        time.sleep(seconds)
        cpu1, client1, machine1, t1 = (cpu_snapshot(server.proc.pid), time.process_time(), machine_busy_seconds(),
                                       time.perf_counter())  # fmt: skip
        stop.set()
        for thread in threads:
            thread.join(TIMEOUT + 5)
    records = [r for rs, _ in per_client for r in rs if t0 <= r.ended <= t1]
    failures = sorted((f for _, fs in per_client for f in fs), key=lambda f: f.ended)
    by_pid = {pid: cpu1[pid] - cpu0.get(pid, 0.0) for pid in cpu1}
    return Result(
        workers=0, window_s=t1 - t0, records=records,
        failures=[f for f in failures if t0 <= f.ended <= t1],
        warmup_failures=[f for f in failures if not t0 <= f.ended <= t1],
        peak_rss=sampler.peak, peak_processes=sampler.peak_processes,
        server_cpu_s=sum(by_pid.values()), server_cpu_by_pid=by_pid, process_names=names,
        client_cpu_s=client1 - client0, machine_busy_s=machine1 - machine0,
        archive_build_s=targets.archive_build_s, log_problems=[],
    )  # fmt: skip


# -- the report ---------------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return math.nan
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


def report(results: list[Result], cpus: int, clients: int, kinds: tuple[str, ...]) -> None:
    head = (f"{'workers':>7} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6} "
            f"{'peak RSS MB':>11} {'server CPU':>10} {'client CPU':>10} {'other CPU':>9} {'MB/s':>6} "
            f"{'CPU ms/req srv+cli':>18}")  # fmt: skip
    print()
    print(head)
    print("-" * len(head))
    for r in results:
        ms = sorted(x.seconds * 1e3 for x in r.records)
        count = max(1, len(ms))
        rss = f"{r.peak_rss / 1e6:.0f} ({r.peak_processes}p)"
        print(f"{r.workers:>7} {len(r.records) / r.window_s:>8.1f} {percentile(ms, 50):>7.1f} "
              f"{percentile(ms, 95):>7.1f} {percentile(ms, 99):>7.1f} {len(r.failures):>6} {rss:>11} "
              f"{r.server_cpu_s / r.window_s:>9.2f}c {r.client_cpu_s / r.window_s:>9.2f}c "
              f"{r.other_cpu_s / r.window_s:>8.2f}c "
              f"{sum(x.nbytes for x in r.records) / r.window_s / 1e6:>6.1f} "
              f"{r.server_cpu_s / count * 1e3:>10.2f} + {r.client_cpu_s / count * 1e3:.2f}")  # fmt: skip
    print(f"(CPU columns: cores busy on average over the window, CPU seconds / wall seconds, of {cpus}; 'other' is "
          "the machine's busy time less the server's and the client's: the kernel's network work outside them, "
          "and anything else running; p = processes in the server's tree at the RSS peak)")  # fmt: skip
    disturbed = [r.workers for r in results if r.other_cpu_s / r.window_s > OTHER_CPU_WARNING]
    if disturbed:
        print(f"WARNING: other processes kept more than {OTHER_CPU_WARNING} of a core busy during the run with "
              f"{', '.join(map(str, disturbed))} worker(s): the machine was not quiet, so those figures are "
              "low")  # fmt: skip
    print()
    print("per request kind: count in the window, p50 / p95 / p99 ms")
    print(f"{'kind':<14}" + "".join(f"{f'{r.workers} worker(s)':>34}" for r in results))
    for kind in kinds:
        cells = []
        for r in results:
            ms = sorted(x.seconds * 1e3 for x in r.records if x.kind == kind)
            cells.append(f"{len(ms):>8} {percentile(ms, 50):>7.1f} / {percentile(ms, 95):>6.1f} / "
                         f"{percentile(ms, 99):>6.1f}")  # fmt: skip
        print(f"{kind:<14}" + "".join(f"{c:>34}" for c in cells))
    print()
    for r in results:
        names = r.process_names
        order = sorted(r.server_cpu_by_pid, key=lambda pid: (names.get(pid) not in ("supervisor", "server"), pid))
        split = ", ".join(f"{names.get(pid, 'process')} {r.server_cpu_by_pid[pid]:.1f}" for pid in order)
        print(f"{r.workers} worker(s): server CPU s by process: {split}; "
              f"client CPU {r.client_cpu_s:.1f} s, machine busy {r.machine_busy_s:.1f} s of "
              f"{cpus * r.window_s:.0f} core-s; first (building) archive GETs "
              f"{', '.join(f'{s:.2f}' for s in r.archive_build_s)} s")  # fmt: skip
        outside = "errors outside the window (warm-up, stop)"
        for label, failures in (("errors", r.failures), (outside, r.warmup_failures)):
            if failures:
                print(f"  {len(failures)} {label}; the first {min(SHOWN_ERRORS, len(failures))}:")
                for f in failures[:SHOWN_ERRORS]:
                    print(f"    {f.kind}: {f.what}")
        if r.log_problems:
            print(f"  the server's log has {len(r.log_problems)} other lines; the first {SHOWN_ERRORS}:")
            for line in r.log_problems[:SHOWN_ERRORS]:
                print(f"    {line[:300]}")
    print()
    print(f"Note: the {clients} client threads run in this one Python process on the same {cpus}-CPU machine as "
          "the server, so they share the cores with it, and their own GIL caps them at one core; the 'client "
          "CPU' column is what they used. Latency is measured in the client (send to last byte), so it includes "
          "time the client threads wait for the GIL and the CPU.")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, help="concurrent clients (default 50; 10 with --quick)")
    parser.add_argument("--seconds", type=float, help="timed window per worker count (default 60; 5 with --quick)")
    parser.add_argument("--warmup", type=float, help="untimed load before the window (default 5; 1 with --quick)")
    parser.add_argument("--workers", default="1,4", help="worker counts, run one after the other (default 1,4)")
    parser.add_argument("--range-kib", type=int, default=64, help="size of each range request (default 64 KiB)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kinds", default=",".join(KINDS), help="the request kinds of the mix (default all)")
    parser.add_argument("--server-cpus", help="run the server under `taskset -c CPUS` (e.g. 0); default: no pinning")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    clients = args.clients or (10 if args.quick else 50)
    seconds = args.seconds or (5.0 if args.quick else 60.0)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 5.0)
    worker_counts = [int(w) for w in args.workers.split(",")]
    kinds = tuple(args.kinds.split(","))
    if not kinds or set(kinds) - set(KINDS):
        parser.error(f"--kinds takes some of {', '.join(KINDS)}")
    cpus = os.cpu_count() or 1
    pinned = f"; server pinned to CPUs {args.server_cpus}" if args.server_cpus else ""
    print(f"{cpus} CPUs; {clients} clients (threads, one requests.Session each), {warmup:g} s warm-up + "
          f"{seconds:g} s timed per worker count {worker_counts}; RSS from "
          f"{'psutil' if psutil is not None else '/proc'}; mix: {', '.join(kinds)} with equal weights, "
          f"ranges of {args.range_kib} KiB{pinned}")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="bench-server-load-"))
    try:
        login = write_sample(work / "store")
        results: list[Result] = []
        for workers in worker_counts:
            server = Server(work / "store", work / f"cache-{workers}", work / f"serve-{workers}.log", workers,
                            secrets.token_urlsafe(32), args.server_cpus)  # fmt: skip
            try:
                targets = look_up(server.url, login)
                targets.kinds = kinds
                sizes = {kind: ", ".join(f"{s / 1e6:.2f}" for _, s in found)
                         for kind, found in (("files", targets.files), ("archives", targets.archives))}  # fmt: skip
                print(f"{workers} worker(s) at {server.url}: {len(targets.data_json)} tasks, "
                      f"{len(targets.quicklooks)} quicklooks, {len(targets.files)} files ({sizes['files']} MB), "
                      f"archives {sizes['archives']} MB; loading...", flush=True)  # fmt: skip
                result = run_load(server, targets, clients, warmup, seconds, args.range_kib * 1024, args.seed)
                result.workers = workers
            finally:
                server.stop()
            result.log_problems = server.problems()
            results.append(result)
        report(results, cpus, clients, kinds)
        errors = sum(len(r.failures) + len(r.warmup_failures) for r in results)
        print(f"errors: {errors}; target 0: {'PASS' if errors == 0 else 'FAIL'}")
        return 0 if errors == 0 else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
