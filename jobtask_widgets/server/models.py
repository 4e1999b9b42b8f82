"""The answers of the protocol as pydantic models, so ``/openapi.json`` describes every one.

Every JSON answer but the FeatureCollection and a successful token is an envelope: one model per
answer (``...Answer``) with ``data`` and ``error: null``, and :class:`ErrorEnvelope` for every
error (docs/architecture.md, "Errors"). A task's ``info.json`` is passed through as the dict it
is, extra keys, key order and null values included; its schema only describes the usual keys.
Binary answers and the bare FeatureCollection are described by the ``*_CONTENT`` mappings.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from .problems import ERROR_CODES
from .store import QUICKLOOK_TYPES


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str = Field(
        description="The protocol's error code, one per HTTP status: "
        + ", ".join(f"{code} ({status})" for status, code in ERROR_CODES.items())
        + ".",
        examples=["NOT_FOUND"],
    )
    message: str = Field(description="What was wrong, and what is accepted where that helps.")


class ErrorEnvelope(BaseModel):
    """Every error answer: ``{"data": null, "error": {"code": ..., "message": ...}}``."""

    data: None = None
    error: ErrorDetail


class Service(BaseModel):
    """What the server is and where it issues tokens."""

    service: str = Field(examples=["jobtask-widgets reference server"])
    token_url: str = Field(description="The path of the token endpoint.", examples=["/oauth/token"])


class IndexAnswer(BaseModel):
    """The answer of ``GET /``."""

    data: Service
    error: None = None


class User(BaseModel):
    """Who a token speaks for."""

    id: str = Field(description="The project id of a project-key token, or the user's name.")
    kind: Literal["project", "user"]


class UserAnswer(BaseModel):
    """The answer of ``GET /users/me``."""

    data: User
    error: None = None


TASK_INFO_SCHEMA: dict[str, Any] = {
    "title": "TaskInfo",
    "description": "A task's info.json as stored, with id set to the task's folder name; other keys pass through.",
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "status": {"type": "string", "examples": ["SUCCEEDED", "FAILED", "RUNNING", "CANCELLED"]},
        "startedAt": {"type": ["string", "null"], "format": "date-time"},
        "finishedAt": {"type": ["string", "null"], "format": "date-time"},
        "block": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "displayName": {"type": "string"}},
            "additionalProperties": True,
        },
        "blockVersion": {"type": "string"},
    },
    "required": ["id"],
    "additionalProperties": True,
}

TaskInfo = Annotated[dict[str, Any], WithJsonSchema(TASK_INFO_SCHEMA)]
"""A task's ``info.json``: a plain dict on the wire, described by :data:`TASK_INFO_SCHEMA`."""


class TaskListAnswer(BaseModel):
    """The answer of ``GET /projects/{p}/jobs/{j}/tasks/``: every task's info.json, by task id."""

    data: list[TaskInfo]
    error: None = None


class ResultsUrl(BaseModel):
    """Where a task's results archive can be fetched, without a token, until the URL expires."""

    url: str = Field(description="A signed URL of the archive, with expires and signature in its query.")


class ResultsUrlAnswer(BaseModel):
    """The answer of ``GET .../tasks/{t}/downloads/results/``."""

    data: ResultsUrl
    error: None = None


class QuicklookNamesAnswer(BaseModel):
    """The answer of ``GET .../tasks/{t}/outputs/quicklooks/``: the image names, sorted."""

    data: list[str] = Field(examples=[["preview.png"]])
    error: None = None


class ResultFile(BaseModel):
    """One regular file under a task's ``output/``."""

    path: str = Field(description="Relative to output/, '/'-separated.", examples=["scene/ndvi.tif"])
    size: int = Field(description="Bytes.")
    media_type: str = Field(examples=["image/tiff; application=geotiff"])
    sha256: str = Field(description="Lower-case hex SHA-256 of the file's bytes.")
    url: str = Field(description="A signed URL of this file alone (GET, HEAD, Range), with expires and signature.")


class ResultFilesAnswer(BaseModel):
    """The answer of ``GET .../tasks/{t}/outputs/files/``: every result file, by path."""

    data: list[ResultFile]
    error: None = None


class TokenAnswer(BaseModel):
    """A successful token request (not an envelope, as OAuth 2 asks)."""

    access_token: str
    token_type: Literal["bearer"]
    expires_in: int = Field(description="Seconds the token lives.")


class TokenForm(BaseModel):
    """The token request, sent as ``application/x-www-form-urlencoded``.

    ``client_credentials`` takes the project id and API key in HTTP Basic auth or as
    ``client_id`` and ``client_secret``; ``password`` takes ``username`` and ``password``.
    """

    grant_type: Literal["client_credentials", "password"]
    client_id: str | None = None
    client_secret: str | None = None
    username: str | None = None
    password: str | None = None


_BINARY: dict[str, Any] = {"schema": {"type": "string", "format": "binary"}}

FEATURE_COLLECTION_SCHEMA: dict[str, Any] = {
    "title": "FeatureCollection",
    "description": "The task's output/data.json as stored: a bare GeoJSON FeatureCollection (RFC 7946).",
    "type": "object",
    "properties": {
        "type": {"const": "FeatureCollection"},
        "features": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["type", "features"],
    "additionalProperties": True,
}

FEATURE_COLLECTION_CONTENT: dict[str, Any] = {"application/json": {"schema": FEATURE_COLLECTION_SCHEMA}}
ARCHIVE_CONTENT: dict[str, Any] = {"application/gzip": _BINARY}
ARCHIVE_PARTS_CONTENT: dict[str, Any] = {"application/gzip": _BINARY, "multipart/byteranges": _BINARY}
STAC_SCHEMA: dict[str, Any] = {
    "description": "A STAC 1.1 Item (or, for a job, an ItemCollection): a GeoJSON Feature (FeatureCollection).",
    "type": "object",
    "properties": {"type": {"enum": ["Feature", "FeatureCollection"]}, "stac_version": {"type": "string"}},
    "required": ["type"],
    "additionalProperties": True,
}
STAC_CONTENT: dict[str, Any] = {"application/geo+json": {"schema": STAC_SCHEMA}}
RESULT_FILE_CONTENT: dict[str, Any] = {"application/octet-stream": _BINARY, "multipart/byteranges": _BINARY}
QUICKLOOK_CONTENT: dict[str, Any] = {media_type: _BINARY for media_type in sorted(set(QUICKLOOK_TYPES.values()))}
