"""The ``jobtask-widgets`` command: ``serve``, ``sample``, ``publish``, ``user``, ``project``, ``cache``, ``doctor``
and ``demo``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging.config
import os
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import JobTaskError

FACTORY = "jobtask_widgets.server.app:app_from_environment"  # the app of each worker of serve --workers N

if TYPE_CHECKING:
    from fastapi import FastAPI

    from .sample import Sample


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except JobTaskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jobtask-widgets", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve a store (a folder or object storage) over the job-task HTTP API")
    serve.add_argument(
        "root", metavar="ROOT", help="the store folder (ROOT/projects/...) or its URL (s3://bucket/prefix)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8042, help="port to listen on; 0 takes a free one (default 8042)")
    _server_options(serve)
    serve.set_defaults(run=_serve)

    sample = sub.add_parser("sample", help="write the sample store (three job tasks) into ROOT")
    sample.add_argument("root", type=Path, metavar="ROOT")
    sample.set_defaults(run=_sample)

    publish = sub.add_parser(
        "publish",
        help="make a job task of a folder of outputs (GeoTIFFs become COGs, with footprints and quicklooks)",
    )
    publish.add_argument("source", type=Path, metavar="SRC", help="the folder of outputs")
    publish.add_argument("root", type=Path, metavar="ROOT", help="the store folder (created when missing)")
    publish.add_argument("--project", required=True, help="the project id")
    publish.add_argument("--job", required=True, help="the job id")
    publish.add_argument("--task", help="the task id (default a new UUID)")
    publish.add_argument("--name", help="the task's name and block name (default the folder's name)")
    publish.add_argument("--replace", action="store_true", help="replace a task of that id that is already there")
    publish.set_defaults(run=_publish)

    user = sub.add_parser("user", help="add or remove a user of a store (passwords stored hashed)")
    user_actions = user.add_subparsers(required=True, metavar="ACTION")
    user_add = user_actions.add_parser("add", help="add a user, or change one's password and projects")
    user_add.add_argument("name", metavar="NAME")
    user_add.add_argument("--projects", default="*", help="the projects the user may open: P1,P2 or * (default *)")
    user_add.set_defaults(run=_user_add)
    user_remove = user_actions.add_parser("remove", help="remove a user")
    user_remove.add_argument("name", metavar="NAME")
    user_remove.set_defaults(run=_user_remove)
    project = sub.add_parser("project", help="add a project to a store (its API key printed once, stored hashed)")
    project_actions = project.add_subparsers(required=True, metavar="ACTION")
    project_add = project_actions.add_parser("add", help="add a project with a new random API key")
    project_add.add_argument("project_id", metavar="ID")
    project_add.set_defaults(run=_project_add)
    for action in (user_add, user_remove, project_add):
        action.add_argument("--root", type=Path, default=Path(), help="the store folder (default .)")
        action.add_argument("--credentials", type=Path, help="the credentials file (default ROOT/credentials.json)")

    upload = sub.add_parser("upload", help="copy a store folder into object storage (s3://, gs://, az://)")
    upload.add_argument("root", type=Path, metavar="ROOT", help="the store folder")
    upload.add_argument("url", metavar="URL", help="where to put it, e.g. s3://bucket/prefix")
    upload.add_argument("--endpoint-url", help="the endpoint of an S3-compatible store (default $AWS_ENDPOINT_URL)")
    upload.set_defaults(run=_upload)

    cache = sub.add_parser("cache", help="show the overview cache's size; --clear empties it")
    cache.add_argument("--clear", action="store_true", help="remove every cached overview")
    cache.set_defaults(run=_cache)

    doctor = sub.add_parser("doctor", help="check that this environment can show the widgets; say what to fix")
    doctor.add_argument("--prefix", type=Path, help="check the front-end files of this environment prefix instead")
    doctor.set_defaults(run=_doctor)

    demo = sub.add_parser("demo", help="the dashboard in Voila over the sample store, served from a temporary folder")
    demo.add_argument("--host", default="127.0.0.1", help="address both servers listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8866, help="the dashboard's port; a free one when taken or 0 (8866)")
    demo.add_argument("--api-port", type=int, default=8042, help="the API's port; a free one when taken or 0 (8042)")
    demo.add_argument("--no-browser", action="store_true", help="do not open the dashboard in a browser")
    demo.set_defaults(run=_demo)
    return parser


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--credentials", type=Path, help="credentials file (default ROOT/credentials.json)")
    parser.add_argument("--token-ttl", type=int, default=3600, help="access token lifetime in s (>= 300)")
    parser.add_argument("--url-ttl", type=int, default=600, help="signed download URL lifetime in s")
    parser.add_argument("--secret", help="HMAC secret shared by workers (default $JOBTASK_SERVER_SECRET or random)")
    parser.add_argument("--cache-dir", type=Path, help="where built archives go (default ROOT/.cache)")
    parser.add_argument("--public-url", help="base of signed URLs when behind a proxy")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes (default 1); more need --secret or JOBTASK_SERVER_SECRET")  # fmt: skip
    parser.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="the log's lines: text, or one JSON object per line for a log collector")  # fmt: skip
    parser.add_argument("--endpoint-url", help="object storage: the endpoint of an S3-compatible store")
    parser.add_argument("--redirect-downloads", action="store_true",
                        help="object storage: redirect file URLs to the store's presigned URLs")  # fmt: skip


def _serve(args: argparse.Namespace) -> int:
    from .server.app import OPTIONS_ENV, create_app
    from .server.auth import SECRET_ENV
    from .server.logs import log_config
    from .server.run import bind

    # the process is ours: its warnings (from the app's start on) print as uvicorn's do
    logging.config.dictConfig(
        log_config(args.log_format, access=args.log_level in {"info", "debug"}, level=args.log_level)
    )
    workers = getattr(args, "workers", 1)
    secret = args.secret or os.environ.get(SECRET_ENV)
    if workers < 1:
        print(f"error: --workers must be at least 1 (got {workers})", file=sys.stderr)
        return 2
    if workers > 1 and not secret:
        print(
            f"error: --workers {workers} needs a shared secret (--secret or {SECRET_ENV}): tokens and signed URLs "
            "issued by one worker must verify in every other",
            file=sys.stderr,
        )
        return 2
    try:
        app = create_app(
            args.root,
            credentials_file=args.credentials,
            token_ttl=args.token_ttl,
            url_ttl=args.url_ttl,
            secret=args.secret,
            cache_dir=args.cache_dir,
            public_url=args.public_url,
            endpoint_url=args.endpoint_url,
            redirect_downloads=args.redirect_downloads,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}; try --port 0", file=sys.stderr)
        return 2
    if app.state.settings.credentials.version == 1:
        print(
            f"warning: {app.state.settings.credentials.source} holds its keys and passwords in plain text "
            f"(version 1); `jobtask-widgets user add NAME --root {args.root}` (or `project add ID`) rewrites it "
            "as version 2, with hashes"
            + (" (in the folder you upload from; then upload it again)" if "://" in str(args.root) else ""),
            file=sys.stderr,
        )
    if workers > 1:  # each worker builds the same app from the environment; this one only checked the store
        options = {
            "root": str(args.root),
            "credentials_file": str(args.credentials) if args.credentials else None,
            "token_ttl": args.token_ttl,
            "url_ttl": args.url_ttl,
            "cache_dir": str(args.cache_dir) if args.cache_dir else None,
            "public_url": args.public_url,
            "endpoint_url": args.endpoint_url,
            "redirect_downloads": args.redirect_downloads,
        }
        os.environ[OPTIONS_ENV] = json.dumps(options)
        os.environ[SECRET_ENV] = str(secret)
    return _run(app if workers == 1 else FACTORY, sock, args.log_level, banner=lambda url: _credentials_banner(app),
                log_format=args.log_format, workers=workers)  # fmt: skip


def _credentials_file(args: argparse.Namespace) -> Path:
    return Path(args.credentials) if args.credentials else Path(args.root) / "credentials.json"


def _read_password(name: str) -> str:
    """The new password: from a prompt on a terminal, else the first line of standard input (never argv)."""
    import getpass

    if sys.stdin.isatty():
        password = getpass.getpass(f"Password for {name}: ")
        if getpass.getpass("Again: ") != password:
            raise ValueError("the two passwords differ")
        return password
    return sys.stdin.readline().rstrip("\r\n")


def _user_add(args: argparse.Namespace) -> int:
    from .credentials import Credentials

    path = _credentials_file(args)
    login = Credentials.load(path)
    projects = None if args.projects.strip() == "*" else tuple(p.strip() for p in args.projects.split(",") if p.strip())
    try:
        login = login.with_user(args.name, _read_password(args.name), projects)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    login.save(path)
    scope = "every project" if projects is None else "projects " + ", ".join(projects)
    print(f"User {args.name} may open {scope}; {path} holds the password hashed (version 2)")
    return 0


def _user_remove(args: argparse.Namespace) -> int:
    from .credentials import Credentials

    path = _credentials_file(args)
    try:
        login = Credentials.load(path).without_user(args.name)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    login.save(path)
    print(f"User {args.name} removed from {path}; tokens already issued to them expire within their lifetime")
    return 0


def _project_add(args: argparse.Namespace) -> int:
    from .credentials import Credentials

    path = _credentials_file(args)
    login = Credentials.load(path) if path.exists() else Credentials()
    try:
        login, key = login.with_project(args.project_id)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    login.save(path)
    print(f"Project {args.project_id} added to {path}; its API key (shown once, stored hashed):")
    print(f"  {key}")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from .publish import print_report, publish

    try:
        done = publish(
            args.source,
            args.root,
            project_id=args.project,
            job_id=args.job,
            task_id=args.task,
            name=args.name,
            replace=args.replace,
            report=print_report,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    converted = f", {len(done.converted)} converted to COGs" if done.converted else ""
    print(f"Task {done.task_id}: {len(done.files)} files{converted}, {len(done.quicklooks)} quicklooks")
    print(f"  in {done.task_dir}")
    if done.api_key:
        print(f"New credentials in {Path(args.root).resolve() / 'credentials.json'} (shown once, keep the key):")
        print(f"  project id {args.project}, API key {done.api_key}")
    if done.note:
        print(f"Note: {done.note}")
    print(f"Serve it with: jobtask-widgets serve {args.root}")
    return 0


def _upload(args: argparse.Namespace) -> int:
    from .server.upload import upload_store

    def report(key: str, size: int) -> None:
        print(f"  {key} ({size:,} B)", flush=True)

    print(f"Uploading {args.root} to {args.url}")
    try:
        done = upload_store(args.root, args.url, endpoint_url=args.endpoint_url, report=report)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Uploaded {done.files} files ({done.size / 1e6:.1f} MB) of {done.tasks} tasks to {args.url}")
    endpoint = f" --endpoint-url {args.endpoint_url}" if args.endpoint_url else ""
    print(f"Serve it with: jobtask-widgets serve {args.url}{endpoint}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from .sample import SAMPLE_API_KEY, SAMPLE_USERS, write_sample

    sample = write_sample(args.root)
    print(f"Sample store written to {sample.root}")
    print(f"  project {sample.project_id}, job {sample.job_id}")
    print(f"  its documented sample login (stored hashed): API key {SAMPLE_API_KEY}; "
          f"users {', '.join(f'{n} / {p}' for n, p in SAMPLE_USERS.items())}")  # fmt: skip
    for task in sample.task_ids:
        print(f"  task {task}: {sample.task_dir(task)}")
    print(f"Serve it with: jobtask-widgets serve {sample.root}")
    return 0


def _cache(args: argparse.Namespace) -> int:
    from .overviews import cache_root, cache_size, clear_cache

    if args.clear:
        print(f"Overview cache {cache_root()} cleared: {clear_cache() / 1e6:.1f} MB freed")
    else:
        print(f"Overview cache {cache_root()}: {cache_size() / 1e6:.1f} MB")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import run_checks

    checks = run_checks(args.prefix)
    for check in checks:
        print(check.line())
    failed = sum(not c.ok for c in checks)
    print(f"{len(checks) - failed} of {len(checks)} checks passed" + ("" if failed else ": ready"))
    return 1 if failed else 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_dashboard

    return run_dashboard(
        host=args.host, port=args.port, api_port=args.api_port, open_browser=not args.no_browser, banner=_demo_banner
    )


def _run(
    app: FastAPI | str,
    sock: socket.socket,
    log_level: str,
    banner: Callable[[str], str],
    log_format: str = "text",
    workers: int = 1,
) -> int:
    """Serve until Ctrl-C; print ``API: <url>`` and the banner once listening."""
    from .server.run import make_server, run_workers, url_of

    url = url_of(sock)

    def listening() -> None:
        print(f"API: {url}", flush=True)
        print(banner(url), flush=True)
        print("Press Ctrl-C to stop.", flush=True)

    server = make_server(app, sock, on_listening=listening, log_level=log_level, log_format=log_format, workers=workers)
    if workers > 1:
        with contextlib.suppress(KeyboardInterrupt):
            run_workers(server, sock, on_listening=listening)
        return 0
    # uvicorn shuts down cleanly, then re-raises Ctrl-C: that is the normal way to stop
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    return 0 if server.started else 1


def _credentials_banner(app: FastAPI) -> str:
    """Who may log in; never a key or a password (a terminal's scrollback and logs keep them)."""
    creds = app.state.settings.credentials
    credentials_file = creds.source or "the credentials file"
    users = ", ".join(sorted(creds.users)) or "none"
    projects = ", ".join(creds.projects) or "none"
    return (
        f"Accepts: client_credentials with the project ids {projects} and their API keys ({credentials_file})\n"
        f"         password grant for users: {users}"
    )


def _demo_banner(url: str, s: Sample) -> str:
    task = f"{url}/projects/{s.project_id}/jobs/{s.job_id}/tasks/{s.task_ids[0]}"
    return f"""Sample store: {s.root}
Credentials: project id {s.project_id}, API key {s.project_api_key}

In Python or a notebook:
  import jobtask_widgets as jw
  jw.authenticate(api_url="{url}", project_id="{s.project_id}", project_api_key="{s.project_api_key}")
  jobtask = jw.initialize_jobtask(jobtask_id="{s.task_ids[0]}", job_id="{s.job_id}")
  print(jobtask)
  frame = jobtask.get_results_json(as_dataframe=True)
  results = jobtask.download_results()
  quicklooks = jobtask.download_quicklooks()

Walk the API with curl:
  TOKEN=$(curl -s -u {s.project_id}:{s.project_api_key} -d grant_type=client_credentials {url}/oauth/token \\
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s -H "Authorization: Bearer $TOKEN" {url}/projects/{s.project_id}/jobs/{s.job_id}/tasks/
  curl -s -H "Authorization: Bearer $TOKEN" {task}/outputs/data-json/
  URL=$(curl -s -H "Authorization: Bearer $TOKEN" {task}/downloads/results/ \\
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["url"])')
  curl -s -o results.tar.gz "$URL" && tar tzf results.tar.gz
  curl -s -H "Authorization: Bearer $TOKEN" {task}/outputs/quicklooks/
  curl -s -o preview.png -H "Authorization: Bearer $TOKEN" {task}/outputs/quicklooks/preview.png"""


if __name__ == "__main__":
    sys.exit(main())
