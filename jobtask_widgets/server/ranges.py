"""The ``Range`` header of an archive request, checked before ``FileResponse`` serves it.

``FileResponse`` serves byte ranges itself, but it answers a bad ``Range`` in plain text. The
archive route therefore checks the header first with :func:`parse_range`, so a bad one gets the
protocol's error envelope (docs/architecture.md, "Errors"), and hands the good ones on.

Accepted is the byte-range grammar of RFC 9110, section 14.1.2::

    Range       = "bytes" "=" range-spec *( OWS "," OWS range-spec )
    range-spec  = first-pos "-" [ last-pos ]      ; bytes=START-END, bytes=START-
                / "-" suffix-length               ; bytes=-SUFFIX

The unit is case-insensitive, positions are ASCII digits, empty list elements are ignored (as
RFC 9110, section 5.6.1, asks of recipients) and whitespace may stand only around commas and
around the whole value. A range-spec whose last position is before its first is malformed.
Unlike RFC 9110, which serves the satisfiable ranges of a set, one unsatisfiable range makes the
whole header unsatisfiable: that is what ``FileResponse`` does, and the check must agree with it.
"""

from __future__ import annotations

import re

RANGE_FORMS = "bytes=START-END, bytes=START- or bytes=-SUFFIX"

_SPEC = re.compile(r"(?P<first>[0-9]+)-(?P<last>[0-9]*)|-(?P<suffix>[0-9]+)")


class MalformedRange(ValueError):
    """A ``Range`` header that is not a byte-range set (answered 400).

    Args:
        header: The header as sent.
    """

    def __init__(self, header: str) -> None:
        super().__init__(f"malformed Range header {header!r}: use {RANGE_FORMS}")
        self.header = header


class RangeNotSatisfiable(ValueError):
    """A byte-range set with a range that starts at or beyond the end (answered 416).

    Args:
        header: The header as sent.
        size: The size of the file in bytes.
        what: What the file is, for the message.

    Attributes:
        headers: The ``Content-Range: bytes */SIZE`` header that RFC 9110 asks of a 416 answer.
    """

    def __init__(self, header: str, size: int, what: str = "file") -> None:
        super().__init__(f"the range {header!r} lies outside the {what}'s {size} bytes")
        self.header = header
        self.size = size
        self.headers = {"Content-Range": f"bytes */{size}"}


def parse_range(header: str, size: int, *, what: str = "file") -> list[tuple[int, int]]:
    """The byte ranges a ``Range`` header asks of a file of ``size`` bytes.

    Args:
        header: The ``Range`` header's value.
        size: The size of the file in bytes.
        what: What the file is, for the message of :class:`RangeNotSatisfiable`.

    Returns:
        The ranges as ``(first, last)`` byte positions, both inclusive, in the order they were
        asked for: a last position beyond the end is clamped to ``size - 1``, a suffix longer
        than the file takes the whole file. Overlapping ranges are left for ``FileResponse`` to
        merge.

    Raises:
        MalformedRange: when the header is not a byte-range set (another unit, letters, a range
            that ends before it starts, no range at all).
        RangeNotSatisfiable: when a range starts at or beyond the end of the file, or asks for
            the last 0 bytes.
    """
    value = header.strip(" \t")
    if value[:6].lower() != "bytes=" or value[6:7] in (" ", "\t"):
        raise MalformedRange(header)
    specs = [part.strip(" \t") for part in value[6:].split(",")]
    ranges: list[tuple[int, int]] = []
    unsatisfiable = False
    for spec in specs:
        if not spec:
            continue  # an empty list element
        match = _SPEC.fullmatch(spec)
        if match is None:
            raise MalformedRange(header)
        if match["suffix"] is not None:
            length = int(match["suffix"])
            unsatisfiable |= length == 0 or size == 0
            ranges.append((max(size - length, 0), size - 1))
            continue
        first = int(match["first"])
        last = int(match["last"]) if match["last"] else size - 1
        if match["last"] and last < first:
            raise MalformedRange(header)
        unsatisfiable |= first >= size
        ranges.append((first, min(last, size - 1)))
    if not ranges:
        raise MalformedRange(header)
    if unsatisfiable:
        raise RangeNotSatisfiable(header, size, what)
    return ranges
