"""The reference job-task server: the protocol's HTTP API over a store of task results, a folder
or object storage.

Build the app with :func:`create_app`; run it with ``jobtask-widgets serve ROOT`` or, inside a
process, with :class:`BackgroundServer`. The protocol and the store layout are described in
docs/architecture.md.

Layout, from the app down:

- ``app.py``: :func:`create_app` checks the store, builds the one ``ServerSettings`` on
  ``app.state.settings`` and includes the router; ``ServerApp`` tidies the OpenAPI document.
- ``routes.py``: the protocol's routes on one module-level ``APIRouter``.
- ``fileroutes.py``: the routes that serve each result file (and quicklook) at a signed URL.
- ``stacroutes.py``: the routes that describe each task as a STAC Item, each job as an ItemCollection.
- ``signed.py``: signed URLs at the route boundary, made and checked (archives, files).
- ``outputs.py``: each result file's digest, media type and rio-stac fields, once per file version.
- ``stac.py``: a task as a STAC Item, built with pystac (pure).
- ``dependencies.py``: ``ServerSettings`` and the dependencies the routes take (settings, store,
  signer, archive cache, the bearer token's claims, the task a token may see).
- ``models.py``: the pydantic models of every answer and of the error envelope.
- ``problems.py``: the error envelope, ``Problem`` for refusals a route decides, and the one
  table ``ERROR_STATUS`` that maps the lower modules' errors to statuses.
- ``ranges.py``: ``parse_range``, the check of an archive request's ``Range`` header.
- ``storebase.py``: what every store gives the app (``TaskStore``) and how it hands a file over
  (``StoreFile``: one version, read in chunks).
- ``store.py``: read access to the store folder; raises ``NotInStore`` (``errors.py``) and
  ``StoreError``, never HTTP errors.
- ``objectstore.py``: the same over object storage (obstore: ``s3://``, ``gs://``, ``az://``),
  with conditional ranged reads and presigned URLs; ``StoreUnreachable`` when it cannot be read.
- ``upload.py``: ``jobtask-widgets upload``: a store folder copied into object storage.
- ``auth.py``: stateless tokens and signed URLs (archives, files, quicklooks); the credentials
  they are issued for are ``jobtask_widgets/credentials.py`` (version 2, hashed).
- ``ratelimit.py``: failed logins counted per client address and name; 429 over the limit.
- ``archive.py``: the results archives, built once into the cache.
- ``run.py``: serving the app with uvicorn on a socket of our own.
"""

from .app import create_app
from .run import BackgroundServer

__all__ = ["BackgroundServer", "create_app"]
