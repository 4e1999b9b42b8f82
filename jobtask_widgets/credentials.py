"""Credentials: projects with their API keys and users with their passwords and projects, as hashes.

``credentials.json`` (mode 0600), version 2::

    {"version": 2,
     "projects": {"<id>": {"api_key": "<hash>"}},
     "users": {"<name>": {"password": "<hash>", "projects": ["<id>", ...] | "*"}}}

A hash is ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`` (``hashlib.scrypt``, a fresh 16-byte salt
each). Version 1 (``{"project_id", "project_api_key", "users": {"name": "password"}}``, plain text)
still loads, its users opening every project; ``serve`` warns and names ``user add``.

Checks take the same time whatever is wrong: a key or password is compared through its hash with
``hmac.compare_digest``, and an unknown project or user is checked against a dummy hash, so it
costs the same hash work as a wrong secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import StoreError
from .jsonfile import read_json_object
from .storelayout import ID_PATTERN, write_private_json

log = logging.getLogger("jobtask_widgets.server")  # the server's logger: serve prints it as uvicorn does
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # 16 MiB and about 50 ms a check
_HASH = re.compile(r"scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9+/=]{1,64})\$([A-Za-z0-9+/=]{1,128})")
USER_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
V2_SHAPE = (
    '{"version": 2, "projects": {"<id>": {"api_key": "<hash>"}}, '
    '"users": {"<name>": {"password": "<hash>", "projects": ["<id>"] or "*"}}}'
)
V1_SHAPE = '{"project_id": str, "project_api_key": str, "users": {"name": "password"}}'


def hash_secret(secret: str) -> str:
    """``secret`` as ``scrypt$n$r$p$salt$hash`` with a fresh random salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])  # fmt: skip


def verify_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` matches ``stored`` (a hash, or a version 1 plain text secret), in constant time."""
    found = _HASH.fullmatch(stored)
    if found is None:  # version 1: the secret itself
        return hmac.compare_digest(secret.encode(), stored.encode())
    n, r, p = (int(found[i]) for i in (1, 2, 3))
    salt, expected = base64.b64decode(found[4]), base64.b64decode(found[5])
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 2**20, dklen=len(expected))
    return hmac.compare_digest(digest, expected)


_DUMMY = hash_secret(secrets.token_urlsafe(16))  # what an unknown project or user is checked against


@dataclass(frozen=True)
class User:
    """A user: the password's hash and the projects they may open (``None``: every project)."""

    password: str
    projects: tuple[str, ...] | None = None

    def may_open(self, project_id: str) -> bool:
        return self.projects is None or project_id in self.projects


@dataclass(frozen=True)
class Credentials:
    """What the server accepts: projects with their API keys, and users.

    Attributes:
        projects: Each project's API key, hashed (plain text in a version 1 file).
        users: Each user by name.
        version: The file's version (1 or 2).
        source: The file they were read from, if any.
    """

    projects: dict[str, str] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    version: int = 2
    source: Path | str | None = field(default=None, compare=False)

    @property
    def project_id(self) -> str:
        """The first project (the one a version 1 file names); ``""`` when there is none."""
        return next(iter(self.projects), "")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Credentials:
        """Read a ``credentials.json``, version 2 or 1.

        Raises:
            StoreError: when the file is missing, unreadable or not of either shape (says which).
        """
        path = Path(path)
        try:
            raw = read_json_object(path)
        except FileNotFoundError as exc:
            raise StoreError(f"no credentials file at {path}; write one with `jobtask-widgets project add`") from exc
        except ValueError as exc:
            raise StoreError(f"credentials file {path} {exc}; it must hold {V2_SHAPE}") from exc
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning(
                "credentials file %s can be read by other users (mode %o); `chmod 600 %s` keeps its hashes to you",
                path,
                mode,
                path,
            )
        try:
            loaded = cls.from_json(raw)
        except ValueError as exc:
            raise StoreError(f"credentials file {path}: {exc}") from exc
        return replace(loaded, source=path)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Credentials:
        """Credentials from a file's JSON.

        Raises:
            ValueError: naming what is wrong and the accepted shape.
        """
        if raw.get("version") == 2:
            projects, users = raw.get("projects"), raw.get("users", {})
            if not isinstance(projects, dict) or not isinstance(users, dict):
                raise ValueError(f"projects and users must be objects: {V2_SHAPE}")
            keys: dict[str, str] = {}
            for pid, entry in projects.items():
                key = entry.get("api_key") if isinstance(entry, dict) else None
                if not ID_PATTERN.fullmatch(pid) or not isinstance(key, str) or _HASH.fullmatch(key) is None:
                    raise ValueError(f"project {pid!r} needs a valid id and a hashed api_key: {V2_SHAPE}")
                keys[pid] = key
            people: dict[str, User] = {}
            for name, entry in users.items():
                password = entry.get("password") if isinstance(entry, dict) else None
                scope = entry.get("projects", "*") if isinstance(entry, dict) else None
                if not isinstance(password, str) or _HASH.fullmatch(password) is None:
                    raise ValueError(f"user {name!r} needs a hashed password: {V2_SHAPE}")
                if scope != "*" and not (isinstance(scope, list) and all(isinstance(p, str) for p in scope)):
                    raise ValueError(f'user {name!r}: projects must be a list of ids or "*": {V2_SHAPE}')
                people[name] = User(password, None if scope == "*" else tuple(scope))
            return cls(keys, people, 2)
        if "version" in raw:
            raise ValueError(f"version {raw['version']!r} is not known; accepted: 2 ({V2_SHAPE}) or 1 ({V1_SHAPE})")
        pid, key, users = raw.get("project_id"), raw.get("project_api_key"), raw.get("users", {})
        if not isinstance(pid, str) or not isinstance(key, str) or not pid or not key:
            raise ValueError(f"needs non-empty project_id and project_api_key: {V1_SHAPE}, or {V2_SHAPE}")
        if not isinstance(users, dict) or not all(isinstance(v, str) and v for v in users.values()):
            raise ValueError(f"users must map names to non-empty passwords: {V1_SHAPE}")
        return cls({pid: key}, {name: User(password) for name, password in users.items()}, 1)

    def to_json(self) -> dict[str, Any]:
        """The version 2 JSON (a version 1 file's plain secrets are hashed on the way)."""

        def hashed(stored: str) -> str:
            return stored if _HASH.fullmatch(stored) else hash_secret(stored)

        return {
            "version": 2,
            "projects": {pid: {"api_key": hashed(key)} for pid, key in self.projects.items()},
            "users": {
                name: {
                    "password": hashed(user.password),
                    "projects": "*" if user.projects is None else list(user.projects),
                }
                for name, user in self.users.items()
            },
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write them as version 2, mode 0600, whole or not at all."""
        write_private_json(Path(path), self.to_json())

    # -- checks -----------------------------------------------------------------------------------
    def check_project_key(self, project_id: str, api_key: str) -> bool:
        """Whether ``api_key`` is the project's (an unknown project costs the same hash work)."""
        stored = self.projects.get(project_id)
        matches = verify_secret(api_key, stored if stored is not None else _DUMMY)
        return stored is not None and matches

    def check_user(self, username: str, password: str) -> bool:
        """Whether the user exists and the password is theirs (an unknown user costs the same hash work)."""
        user = self.users.get(username)
        matches = verify_secret(password, user.password if user is not None else _DUMMY)
        return user is not None and matches

    def user_projects(self, username: str) -> tuple[str, ...] | None:
        """The projects a user may open (``None``: every project)."""
        user = self.users.get(username)
        return () if user is None else user.projects

    # -- changes (the commands) -------------------------------------------------------------------------
    def with_user(self, name: str, password: str, projects: tuple[str, ...] | None) -> Credentials:
        """These credentials with user ``name`` added or changed.

        Raises:
            ValueError: for a bad name, an empty password or an unknown project.
        """
        if not USER_NAME.fullmatch(name):
            raise ValueError(f"user name {name!r}: 1 to 64 letters, digits, '_', '.', '@' or '-'")
        if not password:
            raise ValueError("the password must not be empty")
        unknown = [p for p in projects or () if p not in self.projects]
        if unknown:
            known = ", ".join(self.projects) or "none yet (`jobtask-widgets project add ID`)"
            raise ValueError(f"unknown project {unknown[0]!r}; the store's projects: {known}")
        return replace(self, users={**self.users, name: User(hash_secret(password), projects)}, version=2)

    def without_user(self, name: str) -> Credentials:
        """These credentials without user ``name``.

        Raises:
            ValueError: when there is no such user (naming those there are).
        """
        if name not in self.users:
            raise ValueError(f"no user {name!r}; the users: {', '.join(self.users) or 'none'}")
        return replace(self, users={n: u for n, u in self.users.items() if n != name}, version=2)

    def with_project(self, project_id: str) -> tuple[Credentials, str]:
        """These credentials with a project (a new random API key, stored hashed), and that key.

        Raises:
            ValueError: for a bad id, or a project that is there already.
        """
        if not ID_PATTERN.fullmatch(project_id):
            raise ValueError(f"project id {project_id!r}: letters, digits, '-' and '_' only")
        if project_id in self.projects:
            raise ValueError(f"project {project_id!r} is there already")
        key = secrets.token_urlsafe(24)
        return replace(self, projects={**self.projects, project_id: hash_secret(key)}, version=2), key
