"""Copy a store folder into object storage, in an order a running server never trips over.

``jobtask-widgets upload ROOT s3://bucket/prefix`` puts every result file and quicklook first,
then each task's ``info.json`` (a task exists for the server once its ``info.json`` does, so it
never lists a task whose files are still on their way), and ``credentials.json`` last. What is
copied is exactly what the folder's own server would serve, opened as it opens it: the files
its listings give (a link to ``credentials.json``, to another task or out of the folder is left
out, as are sockets and the folder's ``.cache``), each streamed from its open file by obstore
(multipart for large ones); a file that changes while it is copied stops the upload.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import obstore
from obstore.exceptions import BaseError

from ..errors import StoreError
from .errors import NotInStore, StoreUnreachable
from .objectstore import is_store_url, open_object_store
from .store import Store, open_inside
from .storebase import StoreFile


@dataclass(frozen=True)
class Uploaded:
    """What an upload copied.

    Attributes:
        files: How many objects were written.
        size: Their bytes.
        tasks: How many tasks the store holds.
    """

    files: int
    size: int
    tasks: int


def upload_store(
    root: str | os.PathLike[str],
    url: str,
    *,
    endpoint_url: str | None = None,
    report: Callable[[str, int], None] | None = None,
) -> Uploaded:
    """Copy the store folder ``root`` to ``url`` (``s3://bucket/prefix``, ``gs://``, ``az://``).

    Args:
        root: The store folder; it is checked first, as ``serve`` checks it.
        url: Where to put it.
        endpoint_url: The endpoint of an S3-compatible store.
        report: Called with each key and its size once it is written (progress).

    Raises:
        StoreError: when the folder is not a valid store (names each broken task).
        StoreUnreachable: when the object store cannot be written.
        ValueError: when ``url`` is not object storage.
    """
    if not is_store_url(url):
        raise ValueError(f"{url} is not object storage; accepted: s3://bucket/prefix, gs://..., az://...")
    folder = Store(root)
    refs = folder.check()
    store = open_object_store(url, endpoint_url=endpoint_url)
    first: list[tuple[str, Callable[[], StoreFile]]] = []
    last: list[tuple[str, Callable[[], StoreFile]]] = []
    for ref in refs:  # what the folder's server would serve, opened as it would open it
        for listed in folder.output_files(ref):
            first.append((f"{ref.key}/output/{listed.path}", partial(folder.open_output_file, ref, listed.path)))
        for name in folder.quicklook_names(ref):
            first.append((f"{ref.key}/quicklooks/{name}", partial(folder.open_quicklook, ref, name)))
        task = folder.task_dir(ref)
        last.append((f"{ref.key}/info.json", partial(_open_inside, task / "info.json", task)))
    credentials = open_inside(folder.root / "credentials.json", folder.root)
    if credentials is not None:
        credentials.close()
        last.append(("credentials.json", partial(_open_inside, folder.root / "credentials.json", folder.root)))
    size = 0
    for key, opener in first + last:
        try:
            opened = opener()
        except NotInStore as exc:
            raise StoreError(f"{key} went away during the upload; run it again") from exc
        with opened:
            try:
                with contextlib.closing(opened.chunks(size=8 * 1024 * 1024)) as chunks:
                    obstore.put(store, key, chunks)
            except BaseError as exc:
                raise StoreUnreachable(f"cannot write {key} to {url}: {str(exc).strip().splitlines()[0]}") from exc
            if not opened.unchanged():  # what was put is a part of it: take it away again
                with contextlib.suppress(BaseError):
                    obstore.delete(store, key)
                raise StoreError(f"{opened.where} changed during the upload; run it again once it is complete")
            size += opened.size
        if report is not None:
            report(key, opened.size)
    return Uploaded(len(first) + len(last), size, len(refs))


def _open_inside(path: Path, base: Path) -> StoreFile:
    """``path`` opened as the folder's server opens it; ``NotInStore`` when it is gone or no regular file."""
    opened = open_inside(path, base, "application/json")
    if opened is None:
        raise NotInStore(f"no regular file at {path}")
    return opened


__all__ = ["Uploaded", "upload_store"]
