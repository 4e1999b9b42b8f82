"""HTML for a job task's header, info table, file list and errors: pure functions on plain values.

Every string that came from a server or a file is escaped here, before it reaches HTML; the
widget only places what these functions return.
"""

from __future__ import annotations

import html
import json
import os
import traceback
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import explain
from .timestamps import parse_time

STATUS_COLOURS = {"SUCCEEDED": "#1a7f37", "FAILED": "#cf222e", "CANCELLED": "#6e7781", "RUNNING": "#0969da"}


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def duration_text(started: Any, finished: Any) -> str:
    """``1 h 02 min 05 s`` between two ISO times; ``""`` when either is missing or they are reversed."""
    start, end = parse_time(started), parse_time(finished)
    if start is None or end is None or (start.tzinfo is None) != (end.tzinfo is None) or end < start:
        return ""
    seconds = round((end - start).total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {seconds:02d} s"
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def header_html(info: Mapping[str, Any], jobtask_id: str) -> str:
    """The task's name, status, block and version, start, finish and duration."""
    raw_block = info.get("block")
    block: Mapping[str, Any] = raw_block if isinstance(raw_block, Mapping) else {}
    block_name = block.get("displayName") or block.get("name") or "unknown block"
    status = str(info.get("status") or "UNKNOWN")
    colour = STATUS_COLOURS.get(status, "#6e7781")
    started, finished = info.get("startedAt"), info.get("finishedAt")
    duration = duration_text(started, finished)
    facts = [
        f"<b>{_esc(block_name)}</b> {_esc(info.get('blockVersion') or '')}".rstrip(),
        f"started {_esc(started or '-')}",
        f"finished {_esc(finished or '-')}",
    ]
    if duration:
        facts.append(f"took {_esc(duration)}")
    return (
        '<div class="jobtask-header" style="line-height:1.5">'
        f'<span style="font-size:1.3em;font-weight:600">{_esc(info.get("name") or jobtask_id)}</span> '
        f'<span class="jobtask-status" style="background:{colour};color:white;border-radius:8px;'
        f'padding:1px 8px;font-size:0.85em">{_esc(status)}</span><br>'
        f'<span style="color:#57606a">{" · ".join(facts)}</span><br>'
        f'<span style="color:#6e7781;font-size:0.85em">job task {_esc(jobtask_id)}</span></div>'
    )


def flatten(info: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested mappings as ``(dotted key, value)`` rows, in the mapping's order."""
    rows: list[tuple[str, Any]] = []
    for key, value in info.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows.extend(flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return _esc(value)
    return f"<code>{_esc(json.dumps(value, ensure_ascii=False, default=str))}</code>"


def info_table_html(info: Mapping[str, Any]) -> str:
    """The whole ``info`` dict as a two-column table, nested keys dotted, every string escaped."""
    rows = "".join(
        f'<tr><th style="text-align:left;padding:2px 12px 2px 0;vertical-align:top;white-space:nowrap">'
        f'{_esc(key)}</th><td style="text-align:left;padding:2px 0;word-break:break-word">{_cell(value)}</td></tr>'
        for key, value in flatten(info)
    )
    return f'<table class="jobtask-info" style="border-collapse:collapse;font-size:0.95em">{rows}</table>'


def size_text(size: int) -> str:
    """``12.3 MB``-style sizes (powers of 1024)."""
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def files_html(paths: Sequence[str | os.PathLike[str]], folder: str | os.PathLike[str] | None = None) -> str:
    """The files of a download, relative to ``folder``, with their sizes."""
    if not paths:
        return "<i>no files</i>"
    base = Path(folder).resolve() if folder is not None else None
    items = []
    for path in map(Path, paths):
        shown = path.relative_to(base) if base is not None and path.is_relative_to(base) else path
        size = size_text(path.stat().st_size) if path.exists() else "missing"
        items.append(f"<li><code>{_esc(shown)}</code> <span style='color:#57606a'>{_esc(size)}</span></li>")
    return f'<ul class="jobtask-files" style="margin:2px 0;padding-left:18px">{"".join(items)}</ul>'


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def error_html(exc: BaseException, action: str) -> str:
    """An error in plain words, with its message, causes and traceback one click away."""
    causes = [f"{type(e).__name__}: {e}" for e in _chain(exc)]
    trace = "".join(traceback.format_exception(exc))
    return (
        '<div class="jobtask-error" style="border-left:4px solid #cf222e;background:#fff5f5;'
        'padding:4px 8px;margin:2px 0">'
        f"<b>{_esc(action)} failed.</b> {_esc(explain(exc))}<br>"
        f'<span style="color:#57606a">{_esc(causes[0])}</span>'
        "<details><summary>Details</summary>"
        f'<pre style="white-space:pre-wrap;font-size:0.85em">{_esc(chr(10).join(causes))}\n\n{_esc(trace)}</pre>'
        "</details></div>"
    )
