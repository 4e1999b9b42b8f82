"""RasterTileLayer in the kernel: the protocol's answers, cancel, cache, style and revisions;
the message kinds agree with the front end; the front end's own tests (node --test) pass."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import ipyleaflet
import morecantile
import pytest
from PIL import Image

from jobtask_widgets.raster import RasterSource
from jobtask_widgets.tilelayer import ESM, KINDS, WORKERS, RasterTileLayer
from tests import rasters

ROOT = Path(__file__).parents[2]
TMS = morecantile.tms.get("WebMercatorQuad")


class RecordingLayer(RasterTileLayer):
    """The layer with its outgoing messages recorded (there is no front end in a unit test)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.answers: list[tuple[dict[str, Any], list[bytes]]] = []
        self.arrived = threading.Condition()
        super().__init__(*args, **kwargs)

    def send(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:  # type: ignore[override]
        with self.arrived:
            self.answers.append((content, list(buffers or [])))
            self.arrived.notify_all()

    def wait(self, count: int, timeout: float = 30) -> list[tuple[dict[str, Any], list[bytes]]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.answers) >= count, timeout), self.answers
            return list(self.answers)


def test_the_message_kinds_match_the_front_end() -> None:
    text = ESM.read_text()
    block = re.search(r"export const KINDS = \{([^}]*)\}", text)
    assert block is not None
    js_kinds = dict(re.findall(r'(\w+):\s*"([^"]+)"', block.group(1)))
    assert js_kinds == KINDS
    assert (
        "jobtask_widgets/tilelayer.py" in text
        and "js/tilelayer.js" in Path(__file__).parents[2].joinpath("jobtask_widgets/tilelayer.py").read_text()
    )


def test_the_front_end_tests_pass_under_node() -> None:
    node = shutil.which("node")
    assert node, "node is needed for the front end's tests (.ci/run installs it)"
    result = subprocess.run([node, "--test", "js/tests/"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"# fail 0", result.stdout) and re.search(r"# pass [1-9]", result.stdout)


@pytest.fixture
def layer(tmp_path: Path) -> RecordingLayer:
    source = RasterSource(rasters.halves_rgb(tmp_path / "h.tif", size=400))
    created = RecordingLayer(ipyleaflet.Map(), source)
    yield created
    created.close()


def inside(layer: RasterTileLayer, zoom: int = 11) -> tuple[int, int, int]:
    west, south, east, north = layer.source.bounds_4326
    tile = TMS.tile((west + east) / 2, (south + north) / 2, zoom)
    return tile.z, tile.x, tile.y


def test_traits_start_from_the_raster(layer: RecordingLayer) -> None:
    (south, west), (north, east) = layer.bounds
    assert (west, south, east, north) == pytest.approx(layer.source.bounds_4326)
    assert layer.name == "h.tif"
    assert (layer.revision, layer.attached, layer.visible, layer.opacity) == (0, 0, True, 1.0)
    assert layer.bands == (1, 2, 3)


def test_a_tile_is_answered_with_its_png_as_the_one_buffer(layer: RecordingLayer) -> None:
    z, x, y = inside(layer)
    layer._on_msg(None, {"kind": "tile", "id": "a", "z": z, "x": x, "y": y, "revision": 0}, [])
    (content, buffers), = layer.wait(1)  # fmt: skip
    assert content == {"kind": "tile", "id": "a", "media_type": "image/png", "revision": 0}
    assert len(buffers) == 1 and buffers[0] == layer.source.tile(z, x, y, layer.style)
    image = Image.open(io.BytesIO(buffers[0]))
    assert image.size == (256, 256) and image.mode == "RGBA"


def test_outside_the_raster_the_answer_is_empty_and_bad_requests_get_errors(layer: RecordingLayer) -> None:
    far = TMS.tile(-100.0, 30.0, 11)
    layer._on_msg(None, {"kind": "tile", "id": "out", "z": far.z, "x": far.x, "y": far.y, "revision": 0}, [])
    layer._on_msg(None, {"kind": "tile", "id": "bad", "z": "x", "revision": 0}, [])
    answers = {c["id"]: (c, b) for c, b in layer.wait(2)}
    assert answers["out"] == ({"kind": "tile", "id": "out", "empty": True, "revision": 0}, [])
    assert answers["bad"][0]["kind"] == "error" and "integer z, x and y" in answers["bad"][0]["message"]
    layer._on_msg(None, {"kind": "unknown"}, [])
    layer._on_msg(None, "not a dict", [])  # type: ignore[arg-type]
    layer._pool.shutdown(wait=True)  # every piece of work the layer started has ended: nothing else comes
    assert len(layer.answers) == 2


def test_a_cancelled_request_gets_no_answer(layer: RecordingLayer) -> None:
    release = threading.Event()
    blockers = [layer._pool.submit(release.wait) for _ in range(WORKERS)]  # every worker busy
    z, x, y = inside(layer)
    layer._on_msg(None, {"kind": "tile", "id": "gone", "z": z, "x": x, "y": y, "revision": 0}, [])
    layer._on_msg(None, {"kind": "tile", "id": "kept", "z": z, "x": x + 1, "y": y, "revision": 0}, [])
    layer._on_msg(None, {"kind": "cancel", "id": "gone"}, [])
    release.set()
    for blocker in blockers:
        blocker.result()
    answers = layer.wait(1)
    layer._pool.shutdown(wait=True)  # the cancelled render, if it ran at all, has ended too
    assert [c["id"] for c, _ in layer.answers] == ["kept"] == [c["id"] for c, _ in answers]


def test_the_cache_answers_a_repeated_tile_and_a_style_change_bumps_the_revision(layer: RecordingLayer) -> None:
    z, x, y = inside(layer)
    layer._on_msg(None, {"kind": "tile", "id": "1", "z": z, "x": x, "y": y, "revision": 0}, [])
    layer.wait(1)
    assert len(layer._cache) == 1
    layer._on_msg(None, {"kind": "tile", "id": "2", "z": z, "x": x, "y": y, "revision": 0}, [])
    (_, b1), (second, b2) = layer.wait(2)
    assert b1 == b2 and second["id"] == "2"
    layer.set_style(bands=[1])
    assert layer.revision == 1 and layer.bands == (1,)
    layer.set_style(bands=[1])
    assert layer.revision == 1  # the same style: nothing to redraw
    layer._on_msg(None, {"kind": "tile", "id": "3", "z": z, "x": x, "y": y, "revision": 1}, [])
    third, b3 = layer.wait(3)[2]
    assert third["revision"] == 1 and b3 != b1
    with pytest.raises(ValueError, match=r"h\.tif has bands 1 \(red\), 2 \(green\), 3 \(blue\)"):
        layer.set_style(bands=[9])
    with pytest.raises(ValueError, match="unknown colormap"):
        layer.set_style(colormap="no-such-map")
    with pytest.raises(ValueError, match="stretch must be one of"):
        layer.set_style(stretch="log")
    assert layer.revision == 1


def test_a_raster_without_crs_cannot_make_a_layer(tmp_path: Path) -> None:
    from jobtask_widgets.errors import RasterError

    with pytest.raises(RasterError, match="no coordinate reference system"):
        RasterTileLayer(ipyleaflet.Map(), rasters.no_crs(tmp_path / "n.tif"))
