"""The server under abuse, over real HTTP: links planted in the store, builds that race an output
change, files replaced while they are served, and non-canonical tokens and signed URLs."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from jobtask_widgets.sample import Sample
from tests.helpers import Api, error_of


def signed_url(api: Api, task: str | None = None) -> str:
    answer = api.get(f"{api.task(task)}/downloads/results/")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["data"]["url"])


def members(body: bytes) -> dict[str, bytes]:
    """Every member of an archive, read to its end (a truncated or damaged archive raises)."""
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}  # type: ignore[union-attr]


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".tar.gz"))


# -- 4. only regular files inside a task's own output/ and quicklooks/ ------------------------------------


def test_links_of_every_kind_inside_the_root_never_serve_what_they_point_at(own_api: Api, own_sample: Sample) -> None:
    root, first, second = own_sample.root, own_sample.task_ids[0], own_sample.task_ids[1]
    task, other = own_sample.task_dir(first), own_sample.task_dir(second)
    credentials = root / "credentials.json"
    secret = b"scrypt$"  # the credentials file's hashes: nothing served may hold them
    assert secret in credentials.read_bytes()
    other_info = (other / "info.json").read_bytes()
    own_api.get(signed_url(own_api, second))  # a cached archive of another task to point at
    cached = next(own_api.cache_dir.rglob("*.tar.gz"))
    output, quicklooks = task / "output", task / "quicklooks"
    expected = {p.relative_to(output).as_posix(): p.read_bytes() for p in sorted(output.rglob("*")) if p.is_file()}
    planted = {
        # files that point at secrets, at other tasks, at the cache, at the task's own info.json
        output / "credentials.json": credentials,
        output / "relative-credentials.json": Path("../../../../../../credentials.json"),
        output / "other-info.json": other / "info.json",
        output / "cached.tar.gz": cached,
        output / "info.json": task / "info.json",
        output / "chain.json": output / "chain-step.json",
        output / "chain-step.json": credentials,
        output / "dangling.json": root / "no-such-file",
        # folders: the root, another task's output, the projects folder
        output / "root-folder": root,
        output / "other-output": other / "output",
        output / "projects": root / "projects",
        quicklooks / "credentials.png": credentials,
        quicklooks / "other.png": other / "quicklooks" / "preview.png",
        quicklooks / "self.png": quicklooks / "self.png",  # a loop
    }
    for link, target in planted.items():
        link.symlink_to(target)
    (output / "fine.json").symlink_to(output / "data.json")  # a link inside the task's own output/ is fine
    expected["fine.json"] = expected["data.json"]

    archive = requests.get(signed_url(own_api, first), timeout=60)
    assert archive.status_code == 200
    got = members(archive.content)
    assert got == {f"output/{rel}": body for rel, body in expected.items()}
    assert all(secret not in body and body != other_info for body in got.values())

    listed = own_api.get(f"{own_api.task(first)}/outputs/quicklooks/").json()["data"]
    assert listed == ["preview.png"]
    for name in ("credentials.png", "other.png", "self.png"):
        answer = own_api.get(f"{own_api.task(first)}/outputs/quicklooks/{name}")
        assert answer.status_code == 404, name
        assert error_of(answer)["code"] == "NOT_FOUND"

    # data.json itself a link to the credentials, then to another task's data.json
    (output / "data.json").unlink()
    for target in (credentials, other / "output" / "data.json"):
        (output / "data.json").unlink(missing_ok=True)
        (output / "data.json").symlink_to(target)
        answer = own_api.get(f"{own_api.task(first)}/outputs/data-json/")
        assert answer.status_code == 404, target
        assert secret not in answer.content

    # whole folders that are links: output/ and quicklooks/ of one task pointing at another's
    for name in ("output", "quicklooks"):
        (task / name).rename(task / f"moved-{name}")
        (task / name).symlink_to(other / name)
    assert own_api.get(f"{own_api.task(first)}/outputs/data-json/").status_code == 404
    assert own_api.get(f"{own_api.task(first)}/outputs/quicklooks/").json()["data"] == []
    assert own_api.get(f"{own_api.task(first)}/outputs/quicklooks/preview.png").status_code == 404
    empty = requests.get(signed_url(own_api, first), timeout=60)
    assert empty.status_code == 200
    assert members(empty.content) == {}
    assert own_api.get(f"{own_api.task(second)}/outputs/data-json/").status_code == 200  # the other is served


def test_a_fifo_in_output_is_left_out_and_never_blocks(own_api: Api, own_sample: Sample) -> None:
    output = own_sample.task_dir(own_sample.task_ids[0]) / "output"
    os.mkfifo(output / "pipe.json")
    got = members(requests.get(signed_url(own_api), timeout=60).content)
    assert "output/pipe.json" not in got
    assert "output/data.json" in got


# -- 6. archive builds that cannot race, files served from one open file ----------------------------------


def test_concurrent_builds_across_output_changes_all_succeed_and_leave_no_litter(
    own_api: Api, own_sample: Sample
) -> None:
    output = own_sample.task_dir(own_sample.task_ids[0]) / "output"
    for round_ in range(10):
        (output / "round.txt").write_text(f"round {round_}\n" * (round_ + 1))
        url = signed_url(own_api)
        answers: list[requests.Response] = []
        barrier = threading.Barrier(2)

        def fetch(url: str, barrier: threading.Barrier, answers: list[requests.Response]) -> None:
            barrier.wait()
            answers.append(requests.get(url, timeout=120))

        threads = [threading.Thread(target=fetch, args=(url, barrier, answers)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [a.status_code for a in answers] == [200, 200], [a.text[:200] for a in answers]
        for answer in answers:
            assert members(answer.content)["output/round.txt"] == f"round {round_}\n".encode() * (round_ + 1)
        assert answers[0].headers["repr-digest"] == answers[1].headers["repr-digest"]
    assert leftovers(own_api.cache_dir) == []  # no lock file, no abandoned build
    assert len(list(own_api.cache_dir.rglob("*.tar.gz"))) == 1  # the stale archives are gone


def test_files_replaced_while_served_give_whole_versions_never_a_truncated_one(
    own_api: Api, own_sample: Sample
) -> None:
    output = own_sample.task_dir(own_sample.task_ids[0]) / "output"
    versions = [
        json.dumps({"type": "FeatureCollection", "features": [], "version": n, "pad": "x" * (n * 50_000)}).encode()
        for n in range(1, 4)
    ]
    # what a reader can see whole: a version, or the empty file between a careless writer's
    # truncate and its write (a state the file really had)
    whole = [*versions, b""]
    stop = threading.Event()
    writes = [0]

    def replace_for_ever() -> None:
        n = 0
        while not stop.is_set():
            body = versions[n % len(versions)]
            if n % 2:  # an atomic replace, as a careful writer does
                (output / ".data.json.new").write_bytes(body)
                (output / ".data.json.new").replace(output / "data.json")
            else:  # a rewrite in place, as a careless one does
                with open(output / "data.json", "r+b") as f:
                    f.truncate(0)
                    f.write(body)
            n += 1
            writes[0] = n
            stop.wait(0.1)  # a writer that pauses: some builds (about 35 ms each) fall between two writes

    writer = threading.Thread(target=replace_for_ever)
    writer.start()
    try:
        served, cut, archived, rounds = 0, 0, 0, 0
        while rounds < 30 or writes[0] <= 10:  # 30 rounds at least, over 10 writes at least
            rounds += 1
            try:
                answer = own_api.get(f"{own_api.task()}/outputs/data-json/")
            except requests.exceptions.ChunkedEncodingError:  # cut short: rewritten in place meanwhile
                cut += 1
            else:
                assert answer.status_code == 200
                assert answer.content in whole, answer.content[:80]  # a whole answer is a whole version
                served += 1
            archive = requests.get(signed_url(own_api), timeout=120)
            if archive.status_code == 200:
                got = members(archive.content)  # never a truncated member: the tar reads to its end
                assert got["output/data.json"] in whole
                archived += 1
            else:  # the output kept changing over every try: a clean refusal in the envelope
                assert archive.status_code == 503, archive.text[:200]
                assert "kept changing" in error_of(archive)["message"]
    finally:
        stop.set()
        writer.join()
    assert writes[0] > 10  # the files really were replaced throughout
    assert served > 0 and archived > 0, (served, cut, archived)
    final = requests.get(signed_url(own_api), timeout=120)  # once it is still, the last version
    assert members(final.content)["output/data.json"] == (output / "data.json").read_bytes()
    assert leftovers(own_api.cache_dir) == []


# -- 7. canonical input -----------------------------------------------------------------------------------


def test_tokens_in_any_other_spelling_are_401(api: Api) -> None:
    good = api.session.headers["Authorization"].removeprefix("Bearer ")
    payload, _, signature = good.partition(".")
    padded = base64.urlsafe_b64encode(base64.urlsafe_b64decode(signature + "=")).decode()  # with its "="
    spellings = {
        "junk after the signature": f"{good}junk",
        "a dot after the signature": f"{good}.",
        "padding": f"{payload}.{padded}",
        "a space inside": f"{payload}. {signature}",
        "standard base64 alphabet": f"{payload}.{signature.replace('-', '+').replace('_', '/')}"
        if ("-" in signature or "_" in signature)
        else f"{payload}.{signature[:-1]}+",
        "other low bits in the last character": f"{payload}.{signature[:-1]}{'B' if signature[-1] == 'A' else 'A'}",
        "a 5 kB payload": f"{'A' * 5_000}.{signature}",  # under the HTTP head limit, over the token's
    }
    for label, token in spellings.items():
        answer = requests.get(f"{api.job}/tasks/", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert answer.status_code == 401, label
        assert error_of(answer)["code"] == "UNAUTHORIZED", label
    assert requests.get(f"{api.job}/tasks/", headers={"Authorization": f"Bearer {good}"}, timeout=30).ok


def test_signed_urls_with_other_digits_huge_numbers_or_repeats_are_refused_in_the_envelope(api: Api) -> None:
    url = signed_url(api)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    cases = {
        "superscript two": {**query, "expires": "²"},
        "arabic-indic digits": {**query, "expires": "١٢٣٤٥٦٧٨٩٠"},
        "5,000 digits": {**query, "expires": "9" * 5000},
        "a sign": {**query, "expires": "+" + query["expires"]},
        "spaces": {**query, "expires": f" {query['expires']} "},
        "upper-case signature": {**query, "signature": query["signature"].upper()},
        "short signature": {**query, "signature": query["signature"][:-1]},
    }
    for label, bad in cases.items():
        answer = requests.get(f"{base}?{urlencode(bad)}", timeout=60)
        assert answer.status_code == 403, (label, answer.status_code, answer.text[:200])
        assert error_of(answer)["code"] == "FORBIDDEN", label
    repeated = f"{url}&expires={query['expires']}"
    answer = requests.get(repeated, timeout=60)
    assert answer.status_code == 403
    assert "repeats" in error_of(answer)["message"]
    assert requests.get(url, timeout=60).status_code == 200
