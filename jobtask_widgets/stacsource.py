"""STAC Items as job tasks: :func:`open_stac` and the :class:`StacSource` behind them.

Today's platforms publish results as STAC Items whose assets are COGs behind (signed) URLs; our
server does too (``.../tasks/{t}/stac/``). ``open_stac`` reads an Item, an ItemCollection or a
Collection (an object, a dict, a file or an http(s) URL) and gives a ``JobTask`` per Item, so
``info``, ``get_results_json``, the downloads, ``map_results``, ``plot_results`` and the widget
work on it as on a task of the job-task API:

- ``info``: the Item's properties, with its ``id``, ``bbox`` and datetimes; ``name`` from its
  ``title`` (else the id), and our server's ``jobtask:`` fields also without the prefix;
- ``get_results_json()``: its ``data.json`` asset when it has one, else a FeatureCollection of
  the Item itself (``uid`` its id);
- the result files: every asset but the ``thumbnail`` / ``overview`` ones, named by their key
  (or, for a key without a suffix, by their file name), read in place or downloaded in
  parallel, resumed and each checked against its ``file:checksum`` when the Item gives one;
- the quicklooks: the ``thumbnail`` / ``overview`` assets.

``headers`` (e.g. ``Authorization``) go with every request of the source, GDAL's included. An
Item read from a URL is read again when its signed hrefs expire.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import pystac
import requests

from . import transfer
from .errors import DownloadCancelled, DownloadError
from .httperrors import TIMEOUT
from .remote import public_url

if TYPE_CHECKING:
    from .jobtask import JobTask

QUICKLOOK_ROLES = {"thumbnail", "overview"}
DOWNLOAD_WORKERS = 4
_SAFE_PART = re.compile(r"[^A-Za-z0-9._ -]+")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


def _follow(cancel: threading.Event, stop: threading.Event) -> None:
    """Set ``stop`` when the caller's ``cancel`` is set (until ``stop`` is set anyway)."""
    while not stop.is_set():
        if cancel.wait(0.1):
            stop.set()


def _is_url(text: str) -> bool:
    return urlsplit(text).scheme in ("http", "https")


def _multihash_sha256(value: Any) -> str | None:
    """The hex SHA-256 of a ``file:checksum`` multihash (``1220`` + 64 hex digits), else None."""
    if isinstance(value, str) and re.fullmatch(r"1220[0-9a-fA-F]{64}", value):
        return value[4:].lower()
    return None


def asset_path(key: str, asset: pystac.Asset) -> str:
    """Where an asset goes among the task's files: its key when that is a plain relative path
    with a suffix, else the file name of its href (a GeoTIFF without one gets ``.tif``)."""
    parts = [p for p in key.split("/") if p not in ("", ".", "..")]
    if parts and PurePosixPath(key).suffix:
        return "/".join(_SAFE_PART.sub("_", p) for p in parts)
    name = _SAFE_PART.sub("_", PurePosixPath(urlsplit(asset.href).path).name) or _SAFE_PART.sub("_", key)
    if not PurePosixPath(name).suffix and "tiff" in (asset.media_type or ""):
        name += ".tif"
    return name


def _file_name(asset: pystac.Asset, fallback: str) -> str:
    """The file name of an asset's href (sanitised), else ``fallback``'s."""
    name = _SAFE_PART.sub("_", PurePosixPath(urlsplit(asset.href).path).name)
    return name or PurePosixPath(fallback).name


class StacSource:
    """A STAC Item as a job task's source (see the module docstring).

    Args:
        item: The Item (its self href, when it has one, resolves relative asset hrefs).
        headers: HTTP headers every request carries (GDAL's included).
        url: The http(s) URL the Item was read from, to read it again for fresh signed hrefs.
    """

    def __init__(self, item: pystac.Item, *, headers: Mapping[str, str] | None = None, url: str | None = None) -> None:
        self.item = item
        self._headers = dict(headers or {})
        self._url = url
        self._lock = threading.Lock()
        self.session = requests.Session()  # with the headers, for the Item's own origin
        self.session.headers.update(self._headers)
        self._plain = requests.Session()  # without them, for assets elsewhere (a CDN, S3)
        for session in (self.session, self._plain):
            weakref.finalize(self, session.close)

    @property
    def headers(self) -> Mapping[str, str]:
        """The headers of every request for the Item's assets (see :meth:`headers_for`)."""
        return self._headers

    def headers_for(self, href: str) -> Mapping[str, str]:
        """The headers a request for ``href`` carries: all of them, except that for an Item read
        from a URL they go to that URL's origin only (a token never reaches another host)."""
        if self._url is None or _origin(href) == _origin(self._url):
            return self._headers
        return {}

    def _session_for(self, href: str) -> requests.Session:
        return self.session if self.headers_for(href) else self._plain

    # -- reading the Item -------------------------------------------------------------------------
    def _current(self) -> pystac.Item:
        """The Item, read again from its URL (fresh signed hrefs) when it came from one."""
        if self._url is None:
            return self.item
        item = _as_item(_fetch_json(self.session, self._url), self._url)
        with self._lock:
            self.item = item
        return item

    def _assets(self, item: pystac.Item, *, quicklooks: bool) -> list[tuple[str, str, pystac.Asset]]:
        """``(key, path, asset)`` of the result assets, or of the quicklook ones."""
        chosen, taken = [], set()
        for key, asset in item.assets.items():
            is_quicklook = bool(QUICKLOOK_ROLES & set(asset.roles or []))
            if is_quicklook == quicklooks:
                path, number = asset_path(key, asset), 2
                stem, suffix = str(PurePosixPath(path).with_suffix("")), PurePosixPath(path).suffix
                while path in taken:  # two assets of one file name: the second gets a number
                    path, number = f"{stem}-{number}{suffix}", number + 1
                taken.add(path)
                chosen.append((key, path, asset))
        return chosen

    def info(self) -> dict[str, Any]:
        """The Item's properties with its id, bbox and datetimes (see the module docstring)."""
        item = self.item
        props = dict(item.properties)
        unprefixed = {k.removeprefix("jobtask:"): v for k, v in props.items() if k.startswith("jobtask:")}
        info: dict[str, Any] = {**unprefixed, **props}
        info["id"] = item.id
        info["bbox"] = list(item.bbox) if item.bbox is not None else None
        info.setdefault("name", props.get("title") or item.id)
        times = {"startedAt": props.get("start_datetime"), "finishedAt": props.get("end_datetime")}
        for key, value in times.items():
            if value:
                info.setdefault(key, value)
        if item.collection_id:
            info.setdefault("collection", item.collection_id)
        return info

    def data_json(self) -> bytes:
        """Its data.json asset's bytes, else a FeatureCollection of the Item itself."""
        item = self._current()  # fresh signed hrefs
        for key, asset in item.assets.items():
            if key == "data.json" or urlsplit(asset.href).path.endswith("/data.json"):
                return self._read_bytes(item, key)
        properties = {"uid": item.id, **item.properties}  # labelled on the map by the Item's id
        feature = {"type": "Feature", "id": item.id, "geometry": item.geometry, "properties": properties}
        return json.dumps({"type": "FeatureCollection", "features": [feature]}).encode()

    def _read_bytes(self, item: pystac.Item, key: str) -> bytes:
        href = item.assets[key].get_absolute_href() or item.assets[key].href
        where = f"asset {key!r} of Item {item.id} ({public_url(href)})"
        if _is_url(href):
            try:
                answer = self._session_for(href).get(href, timeout=TIMEOUT)
            except requests.RequestException as exc:
                raise DownloadError(f"{where}: {exc.__class__.__name__}") from exc
            if answer.status_code != 200:
                raise DownloadError(f"{where}: HTTP {answer.status_code}")
            return answer.content
        if self._url is not None:
            raise DownloadError(f"{where}: an Item read from the web names no file of this machine")
        try:
            return Path(href).read_bytes()
        except OSError as exc:
            raise DownloadError(f"{where}: {exc.strerror or exc}") from exc

    def result_files(self) -> list[dict[str, Any]]:
        """Every result asset: ``path``, ``size``, ``media_type``, ``sha256`` (from ``file:checksum``) and ``url``."""
        item = self._current()
        return [
            {
                "path": path,
                "size": asset.extra_fields.get("file:size"),
                "media_type": asset.media_type,
                "sha256": _multihash_sha256(asset.extra_fields.get("file:checksum")),
                "url": asset.get_absolute_href() or asset.href,
            }
            for _, path, asset in self._assets(item, quicklooks=False)
            if self._url is None or _is_url(asset.get_absolute_href() or asset.href)  # the web's Items: web files only
        ]

    # -- downloads --------------------------------------------------------------------------------
    def download_results(
        self,
        folder: Path,
        *,
        progress: transfer.Progress,
        cancel: threading.Event | None,
        max_unpacked_bytes: int | None,
    ) -> list[Path]:
        """Every result asset into ``folder/<path>``, in parallel; each checked against its ``file:checksum``.

        ``max_unpacked_bytes`` is unused: assets are files, not archives.

        Raises:
            DownloadCancelled: when ``cancel`` was set; the files this call wrote are removed.
            DownloadError: when a transfer fails, or a file's SHA-256 is not its ``file:checksum``.
        """
        files = self.result_files()
        return self._download(folder, [(f["path"], f["path"], f["sha256"], f["size"], f["url"]) for f in files],
                              progress, cancel, quicklooks=False)  # fmt: skip

    def download_quicklooks(
        self, folder: Path, *, progress: transfer.Progress, cancel: threading.Event | None
    ) -> list[Path]:
        """The ``thumbnail`` / ``overview`` assets as ``quicklook_{name}``."""
        item = self._current()
        wanted = [
            (
                path,
                f"quicklook_{_file_name(asset, path)}",
                None,
                asset.extra_fields.get("file:size"),
                asset.get_absolute_href() or asset.href,
            )
            for _, path, asset in self._assets(item, quicklooks=True)
        ]
        return self._download(folder, wanted, progress, cancel, quicklooks=True)

    def _download(
        self,
        folder: Path,
        wanted: Sequence[tuple[str, str, str | None, Any, str]],
        progress: transfer.Progress,
        cancel: threading.Event | None,
        *,
        quicklooks: bool,
    ) -> list[Path]:
        if not wanted:
            return []
        folder.mkdir(parents=True, exist_ok=True)
        known = [size for _, _, _, size, _ in wanted if isinstance(size, int)]
        report = _Totals(progress, sum(known) if len(known) == len(wanted) else None)
        stop = threading.Event()  # ours: a failure stops the other transfers, never the caller's event
        watcher = threading.Thread(target=_follow, args=(cancel, stop), daemon=True) if cancel else None
        if watcher is not None:
            watcher.start()
        results: dict[str, tuple[Path, bool]] = {}
        failure: BaseException | None = None
        try:
            with ThreadPoolExecutor(DOWNLOAD_WORKERS, thread_name_prefix="jobtask-stac") as pool:
                futures = {
                    pool.submit(
                        self._fetch_one, path, folder / name, sha256, report.part(path), stop, quicklooks, href=href
                    ): path
                    for path, name, sha256, _, href in wanted
                }
                for future in as_completed(futures):  # the first failure stops the others at once
                    try:
                        results[futures[future]] = future.result()
                    except BaseException as exc:
                        if failure is None:
                            failure = exc
                            stop.set()
            if failure is None and cancel is not None and cancel.is_set():
                failure = DownloadCancelled("asset downloads: cancelled")
            if failure is not None:
                for written, fetched in results.values():
                    if fetched:  # this call wrote it; a copy verified before stays
                        written.unlink(missing_ok=True)
                raise failure
        finally:
            stop.set()  # ends the watcher
            if watcher is not None:
                watcher.join()
            report.close()
        return [results[path][0].resolve() for path, *_ in wanted]

    def _fetch_one(
        self,
        path: str,
        target: Path,
        sha256: str | None,
        progress: transfer.ProgressCallback,
        cancel: threading.Event,
        quicklook: bool,
        href: str | None = None,
    ) -> tuple[Path, bool]:
        """One asset into ``target``; ``(target, whether it was fetched now)``.

        The transfer goes to a hidden ``.NAME.asset`` beside it (with transfer's hidden sidecar,
        so an unchanged, verified copy is not fetched again), linked to ``target`` once checked.
        """
        target.parent.mkdir(parents=True, exist_ok=True)
        href = href or self._href(path, quicklook=quicklook)  # the Item is read again only to renew it
        hrefs = iter([href])

        def get_url() -> str:
            return next(hrefs, None) or self._href(path, quicklook=quicklook)

        if not _is_url(href):
            if self._url is not None:  # an Item from the web names no file of this machine
                raise DownloadError(
                    f"asset {path!r} of an Item read from {public_url(self._url)} is not an http(s) URL"
                )
            part = transfer.part_path(target)
            try:
                shutil.copyfile(href, part)
            except OSError as exc:
                part.unlink(missing_ok=True)
                raise DownloadError(f"asset {path!r}: cannot copy {href}: {exc.strerror or exc}") from exc
            part.replace(target)
            progress(target.stat().st_size, target.stat().st_size)
            if sha256 is not None and transfer.sha256_of(target) != sha256:
                target.unlink()
                raise DownloadError(f"asset {path!r} ({href}): its SHA-256 is not the Item's file:checksum")
            return target, True
        hidden = target.with_name(f".{target.name}.asset")
        got = transfer.download(
            self._session_for(href), get_url, hidden, progress=progress,
            description=PurePosixPath(path).name, cancel=cancel,
        )  # fmt: skip
        if sha256 is not None and got.sha256 != sha256:
            transfer.discard(hidden)
            raise DownloadError(
                f"asset {path!r} ({public_url(href)}): its SHA-256 is not the Item's file:checksum; nothing was kept"
            )
        transfer.mark_verified(hidden)
        target.unlink(missing_ok=True)
        try:
            os.link(hidden, target)  # the same bytes under the visible name, no copy
        except OSError:
            shutil.copyfile(hidden, target)
        return target, got.fetched

    def _href(self, path: str, *, quicklook: bool) -> str:
        """The asset's current href (a fresh signed one when the Item came from a URL)."""
        item = self._current() if self._url is not None else self.item
        for _, found, asset in self._assets(item, quicklooks=quicklook):
            if found == path:
                return asset.get_absolute_href() or asset.href
        raise DownloadError(f"asset {path!r} is no longer in Item {item.id}")


class _Totals:
    """One progress report over several files downloaded at once."""

    def __init__(self, progress: transfer.Progress, total: int | None) -> None:
        self._lock = threading.Lock()
        self._done: dict[str, int] = {}
        self._total = total
        self._callback = progress if callable(progress) else None
        self._bar = None
        if progress is True:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="B", unit_scale=True, desc="assets")

    def part(self, name: str) -> transfer.ProgressCallback:
        def report(done: int, _total: int | None) -> None:
            with self._lock:
                self._done[name] = done
                now = sum(self._done.values())
            if self._bar is not None:
                self._bar.n = now
                self._bar.refresh()
            if self._callback is not None:
                self._callback(now, self._total)

        return report

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# -- reading STAC documents ---------------------------------------------------------------------------


def _fetch_json(session: requests.Session, url: str) -> dict[str, Any]:
    try:
        answer = session.get(url, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise DownloadError(f"cannot read {public_url(url)}: {exc}") from exc
    if answer.status_code != 200:
        raise DownloadError(f"cannot read {public_url(url)}: HTTP {answer.status_code}")
    try:
        value = answer.json()
    except ValueError as exc:
        raise ValueError(f"{public_url(url)} is not JSON, so not a STAC document") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{public_url(url)} holds a JSON {type(value).__name__}, not a STAC document")
    return value


def _kind(document: Mapping[str, Any]) -> str:
    kind = document.get("type")
    if kind == "Feature" and "stac_version" in document:
        return "Item"
    if kind == "FeatureCollection":
        return "ItemCollection"
    if kind in ("Collection", "Catalog"):
        return str(kind)
    return f"a {kind!r} document" if kind else "a document without a 'type'"


def _as_item(document: dict[str, Any], href: str | None) -> pystac.Item:
    if _kind(document) != "Item":
        raise ValueError(f"{href or 'the document'} is {_kind(document)}, not a STAC Item")
    item = pystac.Item.from_dict(document, href=href, preserve_dict=False)
    if href is not None and item.get_self_href() is None:
        item.set_self_href(href)
    return item


def open_stac(
    source: pystac.Item | pystac.ItemCollection | pystac.Collection | Mapping[str, Any] | str | os.PathLike[str],
    *,
    headers: Mapping[str, str] | None = None,
) -> JobTask | list[JobTask]:
    """STAC results as job tasks: a ``JobTask`` for an Item, a list for an ItemCollection or Collection.

    Args:
        source: A pystac Item, ItemCollection or Collection; a dict of one; a path to a JSON
            file of one (relative asset hrefs resolve against it); or an http(s) URL of one.
        headers: HTTP headers for every request of these tasks (e.g. ``{"Authorization":
            "Bearer ..."}``), GDAL's range reads included.

    Raises:
        ValueError: when the source is not an Item, ItemCollection or Collection (says what it is).
        DownloadError: when a URL cannot be read.
    """
    with requests.Session() as session:
        session.headers.update(dict(headers or {}))
        return _open(source, headers, session)


def _open(source: Any, headers: Mapping[str, str] | None, session: requests.Session) -> JobTask | list[JobTask]:
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if _is_url(text):
            return _tasks(_fetch_json(session, text), text, text, headers, session)
        path = Path(text).expanduser().resolve()
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path} cannot be read as a STAC document: {exc}") from exc
        return _tasks(document, str(path), None, headers, session)
    if isinstance(source, pystac.Item):
        return _task(source, headers, None)
    if isinstance(source, pystac.ItemCollection):
        return [_task(item, headers, None) for item in source]
    if isinstance(source, (pystac.Collection, pystac.Catalog)):
        return [_task(item, headers, None) for item in source.get_items(recursive=True)]
    if isinstance(source, Mapping):
        return _tasks(dict(source), None, None, headers, session)
    raise ValueError(
        f"open_stac takes a pystac Item, ItemCollection or Collection, a dict, a path or an http(s) URL "
        f"(got {type(source).__name__})"
    )


def _tasks(
    document: Any, href: str | None, url: str | None, headers: Mapping[str, str] | None, session: requests.Session
) -> JobTask | list[JobTask]:
    where = href or "the document"
    if not isinstance(document, dict):
        raise ValueError(f"{where} holds a JSON {type(document).__name__}, not a STAC document")
    kind = _kind(document)
    if kind == "Item":
        return _task(_as_item(document, href), headers, url)
    if kind == "ItemCollection":
        items = [_as_item(feature, href) for feature in document.get("features") or [] if isinstance(feature, dict)]
        for item in items:
            if href is not None:
                item.set_self_href(_item_href(item, href))
        return [_task(item, headers, None) for item in items]
    if kind in ("Collection", "Catalog"):
        return [_task(item, headers, None) for item in _collection_items(document, href, session)]
    raise ValueError(f"{where} is {kind}, not a STAC Item, ItemCollection or Collection")


def _item_href(item: pystac.Item, collection_href: str) -> str:
    own = next((link.href for link in item.links if link.rel == "self"), None)
    return own if isinstance(own, str) else collection_href


def _collection_items(document: dict[str, Any], href: str | None, session: requests.Session) -> Iterable[pystac.Item]:
    """The Items of a Collection: through its ``items`` link (a STAC API, paged by ``next``), else
    its ``item`` links."""
    links = [link for link in document.get("links") or [] if isinstance(link, dict)]
    api = next((link["href"] for link in links if link.get("rel") == "items"), None)
    if api is not None and href is not None and _is_url(href):
        page: str | None = urljoin(href, str(api))
        seen = 0
        while page and seen < 100:  # at most 100 pages
            collection = _fetch_json(session, page)
            yield from (_as_item(f, page) for f in collection.get("features") or [] if isinstance(f, dict))
            following = [link for link in collection.get("links") or [] if isinstance(link, dict)]
            after = next((link.get("href") for link in following if link.get("rel") == "next"), None)
            page = urljoin(page, str(after)) if after else None
            seen += 1
        return
    catalog = pystac.read_dict(document, href=href)
    if isinstance(catalog, pystac.Catalog):
        yield from catalog.get_items(recursive=True)


def _task(item: pystac.Item, headers: Mapping[str, str] | None, url: str | None) -> JobTask:
    from .jobtask import JobTask

    source = StacSource(item, headers=headers, url=url)
    return JobTask(item.id, item.collection_id or "stac", "stac", source=source, info=source.info())


__all__ = ["QUICKLOOK_ROLES", "StacSource", "asset_path", "open_stac"]
