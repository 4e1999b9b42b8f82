"""The doctor's checks as pure functions of what they find: versions, front-end files, drivers, the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobtask_widgets.doctor import (
    Check,
    cache_check,
    gdal_check,
    module_checks,
    required_modules,
    satisfies,
    widgets_check,
)


@pytest.mark.parametrize(
    ("version", "spec", "expected"),
    [
        ("0.20.0", "^0.20", True),
        ("0.20.7", "^0.20", True),
        ("0.21.0", "^0.20", False),
        ("0.19.9", "^0.20", False),
        ("1.4.0", "^1.2", True),
        ("2.0.0", "^1.2", False),
        ("0.0.3", "^0.0.3", True),
        ("0.0.4", "^0.0.3", False),
        ("0.11.0", "~0.11.*", True),
        ("0.11.9", "~0.11.*", True),
        ("0.12.0", "~0.11.*", False),
        ("1.2.9", "~1.2.3", True),
        ("1.2.2", "~1.2.3", False),
        ("1.3.0", "~1.2.3", False),
        ("2.0.0", "2.0.0", True),
        ("2.0.1", "2.0.0", False),
        ("2.5.1", "2.x", True),
        ("3.0.0", "2.x", False),
        ("9.9.9", "*", True),
    ],
)
def test_satisfies_reads_npm_ranges_as_the_front_ends_do(version: str, spec: str, expected: bool) -> None:
    assert satisfies(version, spec) is expected


def test_satisfies_refuses_what_is_no_version() -> None:
    with pytest.raises(ValueError, match=r"MAJOR\.MINOR\.PATCH"):
        satisfies("0.20", "^0.20")
    with pytest.raises(ValueError, match="is not MAJOR"):
        satisfies("0.20.0", ">=0.20 <1")


def fake_prefix(root: Path, modules: dict[str, str | None], *, nbextensions: bool = True) -> Path:
    """A ``share/jupyter`` with each module's lab extension at a version (``None``: none) and nbextension."""
    data = root / "share" / "jupyter"
    for module, version in modules.items():
        if version is not None:
            lab = data / "labextensions" / module
            lab.mkdir(parents=True)
            (lab / "package.json").write_text(json.dumps({"name": module, "version": version}))
        if nbextensions:
            nb = data / "nbextensions" / module
            nb.mkdir(parents=True)
            (nb / "index.js").write_text("define([], () => ({}));\n")
    return data


WANTED = {"jupyter-leaflet": {"^0.20"}, "anywidget": {"~0.11.*"}}


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def test_the_front_end_modules_pass_when_both_kinds_are_there_at_accepted_versions(tmp_path: Path) -> None:
    data = fake_prefix(tmp_path, {"jupyter-leaflet": "0.20.3", "anywidget": "0.11.0"})
    checks = module_checks([data], WANTED)
    assert [c.name for c in checks] == [
        "anywidget lab extension",
        "anywidget nbextension",
        "jupyter-leaflet lab extension",
        "jupyter-leaflet nbextension",
    ]
    assert all(c.ok for c in checks), [c.line() for c in checks]
    assert "0.20.3 satisfies ^0.20" in by_name(checks)["jupyter-leaflet nbextension"].detail


def test_a_missing_nbextension_is_named_with_where_it_was_looked_for_and_what_to_do(tmp_path: Path) -> None:
    data = fake_prefix(tmp_path, {"jupyter-leaflet": "0.20.0", "anywidget": "0.11.0"})
    (data / "nbextensions" / "jupyter-leaflet" / "index.js").unlink()
    checks = by_name(module_checks([data], WANTED))
    missing = checks["jupyter-leaflet nbextension"]
    assert not missing.ok
    assert missing.detail == f"missing (looked in {data / 'nbextensions'})"
    assert "nbextensions/jupyter-leaflet/index.js" in missing.fix and "VS Code" in missing.fix
    assert checks["jupyter-leaflet lab extension"].ok and checks["anywidget nbextension"].ok
    assert missing.line().startswith("FAIL  jupyter-leaflet nbextension: missing") and "\n      fix: " in missing.line()


def test_a_version_the_widgets_do_not_accept_is_named_with_the_range(tmp_path: Path) -> None:
    data = fake_prefix(tmp_path, {"jupyter-leaflet": "0.19.2", "anywidget": "0.12.0"})
    checks = by_name(module_checks([data], WANTED))
    assert checks["jupyter-leaflet lab extension"].detail.startswith("0.19.2 at ")
    assert checks["jupyter-leaflet lab extension"].detail.endswith("but the widgets want ^0.20")
    assert not checks["jupyter-leaflet nbextension"].ok  # the wheel's nbextension is as old
    assert "want ~0.11.*" in checks["anywidget nbextension"].detail
    assert not any(c.ok for c in checks.values())


def test_an_nbextension_without_its_package_json_is_not_taken_on_trust(tmp_path: Path) -> None:
    data = fake_prefix(tmp_path, {"jupyter-leaflet": None, "anywidget": "0.11.0"})
    checks = by_name(module_checks([data], WANTED))
    assert "missing" in checks["jupyter-leaflet lab extension"].detail
    assert "has no package.json beside it; wanted ^0.20" in checks["jupyter-leaflet nbextension"].detail


def test_the_modules_found_in_any_data_folder_count(tmp_path: Path) -> None:
    user = fake_prefix(tmp_path / "user", {"anywidget": "0.11.0"})
    env = fake_prefix(tmp_path / "env", {"jupyter-leaflet": "0.20.0"})
    assert all(c.ok for c in module_checks([user, env], WANTED))


def test_the_widgets_ask_for_the_modules_they_are_drawn_by() -> None:
    required = required_modules()
    assert set(required) >= {"jupyter-leaflet", "anywidget"}
    assert all(satisfies("0.20.0", spec) for spec in required["jupyter-leaflet"])


def test_ipywidgets_kernel_and_front_end_majors_must_match() -> None:
    assert widgets_check("8.1.5", "5.0.16").ok
    old_front = widgets_check("8.1.5", "3.0.11")
    assert not old_front.ok and "needs jupyterlab-manager 5.x, found 3.0.11" in old_front.detail
    assert "pip install -U ipywidgets jupyterlab_widgets" in old_front.fix
    assert not widgets_check("7.8.1", "5.0.16").ok
    assert "not installed" in widgets_check(None, "5.0.0").detail
    assert "no @jupyter-widgets/jupyterlab-manager" in widgets_check("8.1.5", None).detail


def test_gdal_needs_gtiff_and_cog() -> None:
    assert gdal_check(["GTiff", "COG", "PNG"]).ok
    missing = gdal_check(["GTiff", "PNG"])
    assert (missing.ok, missing.detail) == (False, "COG missing")
    assert gdal_check([]).detail == "GTiff and COG missing"


def test_the_cache_must_be_writable(tmp_path: Path) -> None:
    assert cache_check(tmp_path / "new" / "cache").ok
    assert (tmp_path / "new" / "cache").is_dir() and not list((tmp_path / "new" / "cache").iterdir())
    (tmp_path / "file").write_text("x")
    blocked = cache_check(tmp_path / "file" / "cache")
    assert not blocked.ok and "is not writable" in blocked.detail and "JOBTASK_WIDGETS_CACHE" in blocked.fix
