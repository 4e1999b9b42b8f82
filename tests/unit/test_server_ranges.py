"""The Range header check of the archive route, as a pure function."""

from __future__ import annotations

import pytest

from jobtask_widgets.server.ranges import RANGE_FORMS, MalformedRange, RangeNotSatisfiable, parse_range

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "ranges"),
    [
        ("bytes=0-99", [(0, 99)]),
        ("bytes=0-0", [(0, 0)]),
        ("bytes=100-", [(100, 999)]),
        ("bytes=999-", [(999, 999)]),
        ("bytes=-1", [(999, 999)]),
        ("bytes=-500", [(500, 999)]),
        ("bytes=-1000", [(0, 999)]),
        ("bytes=-5000", [(0, 999)]),  # a suffix longer than the file takes all of it
        ("bytes=5-999", [(5, 999)]),
        ("bytes=5-1000", [(5, 999)]),  # the end is clamped to the last byte
        ("bytes=5-99999999999999999999", [(5, 999)]),
        ("bytes=0-9,20-29,-5", [(0, 9), (20, 29), (995, 999)]),
        ("bytes=20-29,0-9", [(20, 29), (0, 9)]),  # in the order asked for
        ("bytes=0-9,5-14", [(0, 9), (5, 14)]),  # overlaps are FileResponse's to merge
        ("bytes=007-010", [(7, 10)]),
        ("Bytes=0-1", [(0, 1)]),  # the unit is case-insensitive
        ("BYTES=0-1", [(0, 1)]),
    ],
)
def test_valid_forms(header: str, ranges: list[tuple[int, int]]) -> None:
    assert parse_range(header, SIZE) == ranges


@pytest.mark.parametrize(
    ("header", "ranges"),
    [
        ("bytes=0-1, 3-4", [(0, 1), (3, 4)]),
        ("bytes=0-1 ,3-4", [(0, 1), (3, 4)]),
        ("bytes=0-1 ,\t 3-4", [(0, 1), (3, 4)]),
        ("  bytes=0-1  ", [(0, 1)]),  # around the whole value
        ("bytes=0-1,,3-4", [(0, 1), (3, 4)]),  # empty list elements are ignored
        ("bytes=,0-1,", [(0, 1)]),
    ],
)
def test_whitespace_around_commas_and_empty_elements(header: str, ranges: list[tuple[int, int]]) -> None:
    assert parse_range(header, SIZE) == ranges


@pytest.mark.parametrize("header", ["bytes=0 -1", "bytes=0- 1", "bytes=- 5", "bytes =0-1", "bytes= 0-1", "bytes=0-1 2"])
def test_whitespace_inside_a_range_is_malformed(header: str) -> None:
    with pytest.raises(MalformedRange):
        parse_range(header, SIZE)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "0-99",  # no bytes=
        "=0-99",
        "bytes",
        "bytes:0-99",
        "lines=1-2",
        "bytesx=0-1",
        "bytes=",
        "bytes=,",
        "bytes=-",
        "bytes=a-b",
        "bytes=0-b",
        "bytes=a-",
        "bytes=0x10-20",
        "bytes=+1-2",
        "bytes=1.5-2",
        "bytes=5-3",  # ends before it starts
        "bytes=0-1,5-3",
        "bytes=0-1-2",
        "bytes=--5",
        "bytes=5",
        "bytes=0-1;2-3",
        "bytes=\u0661-\u0662",  # Arabic-Indic digits are not ASCII digits
    ],
)
def test_malformed(header: str) -> None:
    with pytest.raises(MalformedRange) as info:
        parse_range(header, SIZE)
    assert RANGE_FORMS in str(info.value)
    assert repr(header) in str(info.value)


@pytest.mark.parametrize(
    "header",
    ["bytes=1000-", "bytes=1000-2000", "bytes=5000-", "bytes=-0", "bytes=0-9,1000-", "bytes=-0,0-1"],
)
def test_a_start_at_or_beyond_the_end_is_not_satisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range(header, SIZE, what="archive")
    assert info.value.size == SIZE
    assert info.value.headers == {"Content-Range": f"bytes */{SIZE}"}
    assert f"the archive's {SIZE} bytes" in str(info.value)


def test_nothing_of_an_empty_file_is_satisfiable() -> None:
    for header in ("bytes=0-", "bytes=0-0", "bytes=-1"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, 0)


def test_malformed_wins_over_unsatisfiable() -> None:
    with pytest.raises(MalformedRange):
        parse_range("bytes=5000-,5-3", SIZE)
