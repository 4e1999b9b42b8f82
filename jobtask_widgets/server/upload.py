"""Copy a store folder into object storage, in an order a running server never trips over.

``jobtask-widgets upload ROOT s3://bucket/prefix`` puts every result file and quicklook first,
then each task's ``info.json`` (a task exists for the server once its ``info.json`` does, so it
never lists a task whose files are still on their way), and ``credentials.json`` last. Files
are streamed by obstore (multipart for large ones); only regular files inside the folder are
copied (links that leave it, sockets and the folder's ``.cache`` are left out).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import obstore
from obstore.exceptions import BaseError

from ..errors import StoreError
from ..storelayout import regular_files
from .errors import StoreUnreachable
from .objectstore import is_store_url, open_object_store
from .store import Store


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
    base = folder.root
    files = [(rel, path) for rel, path in regular_files(base / "projects", inside=base)]
    info = {f"{ref.key}/info.json" for ref in refs}
    first = [(f"projects/{rel}", path) for rel, path in files if f"projects/{rel}" not in info]
    last = [(f"projects/{rel}", path) for rel, path in files if f"projects/{rel}" in info]
    credentials = base / "credentials.json"
    if credentials.is_file():
        last.append(("credentials.json", credentials))
    store = open_object_store(url, endpoint_url=endpoint_url)
    size = 0
    for key, path in first + last:
        try:
            obstore.put(store, key, path)
        except (BaseError, OSError) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, BaseError) and not path.is_file():
                raise StoreError(f"{path} went away during the upload") from exc
            raise StoreUnreachable(f"cannot write {key} to {url}: {str(exc).strip().splitlines()[0]}") from exc
        size += path.stat().st_size
        if report is not None:
            report(key, path.stat().st_size)
    return Uploaded(len(first) + len(last), size, len(refs))


__all__ = ["Uploaded", "upload_store"]
