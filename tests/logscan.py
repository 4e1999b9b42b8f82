"""A session-wide log scan: no token, signature, key or password in what the test session logged.

Captured for the whole session:

- every log record emitted in this process, whatever its logger (``jobtask_widgets.server``,
  ``jobtask_widgets.access``, ``uvicorn.*``, the root logger, ...), formatted with its arguments
  and its exception's text. Each in-process server's uvicorn ``dictConfig`` removes the handlers
  of the loggers it configures, so a handler merely added to them at session start would be gone
  after the first ``start_api``; :class:`SessionLog` is instead called from
  ``logging.Logger.callHandlers``, once per record, after the logger's filters (the access log's
  redaction) and before its handlers;
- the complete output of every command started by ``tests.helpers.Running`` (each line its pump
  read, whether or not a test waited for it).

Secrets: those the helpers obtained or used (:func:`remember`: access tokens, the test secret,
the sample API key and passwords) and patterns (``signature=``, ``access_token=``, ``password=``,
... not followed by ``REDACTED``; an ``Authorization`` header; anything shaped like one of the
server's tokens). At the session's end everything captured is scanned (:func:`scan`); a finding
fails the session and is printed by kind with the secret itself redacted. The captured text goes
to ``artifacts/session-logs.txt`` (findings redacted there too).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from jobtask_widgets.redaction import SECRET_PARAMETERS
from jobtask_widgets.sample import SAMPLE_API_KEY, SAMPLE_USERS

ARTIFACT = Path("artifacts") / "session-logs.txt"  # under the rootdir
SHOWN = 20  # findings printed at the session's end (all of them are marked in ARTIFACT)

# -- what the session captured --------------------------------------------------------------------


@dataclass
class Output:
    """The lines of one source: the in-process log, or one command's whole output."""

    name: str
    lines: list[str] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)


_lock = threading.Lock()
_outputs: list[Output] = []
_secrets: dict[str, str] = {}  # value -> kind


def command_output(name: str) -> Output:
    """A new source for a command's output (``Running``); append each line read, set ``ended`` at EOF."""
    output = Output(name)
    with _lock:
        _outputs.append(output)
    return output


def remember(kind: str, value: object) -> None:
    """A secret of the session (a token a helper obtained, a secret it used) to look for."""
    if isinstance(value, str) and len(value) >= 6:  # shorter ones would match by chance
        with _lock:
            _secrets.setdefault(value, kind)


def _known_secrets() -> dict[str, str]:
    from tests.helpers import SECRET

    known = {SAMPLE_API_KEY: "API key", SECRET: "server secret"}
    known.update({password: "password" for password in SAMPLE_USERS.values()})
    with _lock:
        known.update(_secrets)
    return known


class SessionLog(logging.Handler):
    """Keeps every record as text: time, level, logger, message with its arguments, exception."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s"))
        self.output = Output("in-process logging")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a record whose arguments do not fit its message: keep both raw
            text = f"{record.levelname} [{record.name}] {record.msg!r} % {record.args!r}"
        self.output.lines.extend(text.splitlines() or [""])

    def install(self) -> Callable[[], None]:
        """Hear every record emitted in this process from now on; returns the undo."""
        original = logging.Logger.callHandlers
        handler = self

        def call_handlers(logger: logging.Logger, record: logging.LogRecord) -> None:
            handler.handle(record)
            original(logger, record)

        logging.Logger.callHandlers = call_handlers  # type: ignore[method-assign, assignment]
        with _lock:
            _outputs.insert(0, self.output)

        def uninstall() -> None:
            logging.Logger.callHandlers = original  # type: ignore[method-assign]
            handler.output.ended.set()

        return uninstall


# -- the scan ---------------------------------------------------------------------------------------

_PARAMETERS = "|".join(re.escape(name) for name in SECRET_PARAMETERS)  # the names the redaction hides
_NOT_A_VALUE = r"(?!REDACTED\b|None\b|\$|\*{3})"
PATTERNS: dict[str, re.Pattern[str]] = {
    # a query or form parameter, or a keyword argument, with a value: ?signature=ab12, password='x'
    "secret parameter": re.compile(
        rf"(?i)(?<![A-Za-z0-9_])(?:{_PARAMETERS})=[\"']?{_NOT_A_VALUE}(?P<secret>[^&#\s\"'<>,;)]+)"
    ),
    # the same in JSON or a dict's repr: "password": "x"
    "secret field": re.compile(rf"(?i)[\"'](?:{_PARAMETERS})[\"']\s*:\s*[\"']{_NOT_A_VALUE}(?P<secret>[^\"']+)"),
    "authorization header": re.compile(
        rf"(?i)authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic)\s+{_NOT_A_VALUE}(?P<secret>[^\s\"',]+)"
    ),
    "bearer token": re.compile(rf"(?i)\bbearer\s+{_NOT_A_VALUE}(?P<secret>[A-Za-z0-9._~+/-]{{16,}}=*)"),
    # the server's tokens: base64url of JSON claims, ".", the 43 characters of the MAC
    "access token": re.compile(r"(?P<secret>eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])"),
}


@dataclass(frozen=True)
class Finding:
    source: str
    number: int  # 1-based line number in its source
    kind: str
    snippet: str  # the line, every secret in it redacted

    def __str__(self) -> str:
        return f"{self.kind} in {self.source}, line {self.number}: {self.snippet}"


def _spans(line: str, secrets: dict[str, str]) -> list[tuple[int, int, str]]:
    spans = []
    for value, kind in secrets.items():
        start = line.find(value)
        while start >= 0:
            spans.append((start, start + len(value), kind))
            start = line.find(value, start + 1)
    for kind, pattern in PATTERNS.items():
        spans.extend((m.start("secret"), m.end("secret"), kind) for m in pattern.finditer(line))
    return spans


def redacted(line: str, spans: Iterable[tuple[int, int, str]]) -> str:
    """``line`` with each span replaced by ``<kind>``; overlapping spans merged."""
    merged: list[list[Any]] = []
    for start, end, kind in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, kind])
    out, last = [], 0
    for start, end, kind in merged:
        out += [line[last:start], f"<{kind} redacted>"]
        last = end
    return "".join([*out, line[last:]])


def scan(
    lines: Iterable[str], source: str = "", secrets: dict[str, str] | None = None
) -> Iterator[tuple[Finding, str]]:
    """Each line holding a secret (a value of ``secrets``, named by its kind) or a pattern of
    :data:`PATTERNS`, as a finding and the line redacted."""
    known = _known_secrets() if secrets is None else secrets
    for number, line in enumerate(lines, 1):
        spans = _spans(line, known)
        if spans:
            clean = redacted(line, spans)
            kinds = sorted({kind for *_, kind in spans})
            first = clean.find(" redacted>")  # a window of the line around its first secret
            start = max(0, first - 150) if len(clean) > 240 else 0
            snippet = (
                ("..." if start else "") + clean[start : start + 240] + ("..." if start + 240 < len(clean) else "")
            )
            yield Finding(source, number, ", ".join(kinds), snippet), clean


# The demo's banner prints the sample store's documented login (SAMPLE_API_KEY, stored hashed,
# "not-a-secret") on purpose, so a person can try the API: allowed in the demo's output only, for
# that key only, and counted in the summary.
_DEMO_BANNER = re.compile(
    r"^(?:Credentials: project id \S+, API key \S+"
    r"|  jw\.authenticate\(api_url=\"\S+\", project_id=\"\S+\", project_api_key=\"[^\"]+\"\)"
    r"|  TOKEN=\$\(curl -s -u [^:\s]+:\S+ -d grant_type=client_credentials \S+/oauth/token \\)$"
)


def allowed(source: str, line: str) -> bool:
    """The demo banner's documented sample key: the one deliberate credential in a command's output."""
    if not source.startswith("jobtask-widgets demo ") or _DEMO_BANNER.match(line) is None:
        return False
    return all(line[start:end] == SAMPLE_API_KEY for start, end, _ in _spans(line, _known_secrets()))


# -- the pytest hooks (imported by tests/conftest.py) ----------------------------------------------


@dataclass
class _Result:
    lines: int = 0
    sources: int = 0
    commands: int = 0
    allowed: int = 0
    findings: list[Finding] = field(default_factory=list)
    artifact: Path | None = None


_state: dict[str, Any] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    _state["uninstall"] = SessionLog().install()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    uninstall = _state.pop("uninstall", None)
    if uninstall is None:
        return
    uninstall()
    with _lock:
        outputs = list(_outputs)
        _outputs.clear()
    result = _Result(sources=len(outputs), commands=len(outputs) - 1)
    text: list[str] = []
    known = _known_secrets()
    for output in outputs:
        output.ended.wait(timeout=5)  # a stopped command's last lines are still being pumped
        lines = list(output.lines)
        result.lines += len(lines)
        name = redacted(output.name, _spans(output.name, known))  # a command's arguments: --secret X
        flagged: dict[int, str] = {}
        for finding, clean in scan(lines, name, known):
            if allowed(output.name, lines[finding.number - 1]):
                result.allowed += 1
            else:
                result.findings.append(finding)
            flagged[finding.number] = clean
        ended = "" if output.ended.is_set() else ", still running at the session's end"
        text.append(f"==== {name} ({len(lines)} lines{ended}) ====")
        text.extend(flagged.get(number, line) for number, line in enumerate(lines, 1))
    artifact = session.config.rootpath / ARTIFACT
    try:
        artifact.parent.mkdir(parents=True, exist_ok=True)
        artifact.write_text("\n".join(text) + "\n", encoding="utf-8")
        result.artifact = artifact
    except OSError:
        pass
    if result.findings and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    _state["result"] = result


def summary(result: _Result) -> list[str]:
    where = f"; the log is in {result.artifact}" if result.artifact else ""
    allowances = (
        f" ({result.allowed} demo banner lines with the documented sample key allowed)" if result.allowed else ""
    )
    counts = (
        f"log scan: {result.lines} lines from {result.sources} source{'s' * (result.sources != 1)} "
        f"(in-process logging and the output of {result.commands} command{'s' * (result.commands != 1)})"
    )
    if not result.findings:
        return [f"{counts}: none held a token, signature, key or password{allowances}{where}"]
    return [
        f"{counts}: {len(result.findings)} lines hold a secret (FAILED){allowances}{where}",
        *(f"  {finding}" for finding in result.findings[:SHOWN]),
        *([f"  ... and {len(result.findings) - SHOWN} more"] if len(result.findings) > SHOWN else []),
    ]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    result = _state.pop("result", None)
    if result is None:
        return
    lines = summary(result)
    if result.findings:
        terminalreporter.write_sep("=", "secrets in the session's logs", red=True, bold=True)
    for line in lines:
        terminalreporter.write_line(line, red=bool(result.findings))
