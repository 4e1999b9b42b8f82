"""``jobtask-widgets doctor``: is this environment ready to show the widgets, and if not, what to fix.

A blank map in VS Code, Voila or JupyterLab almost always means a front-end module the kernel's
environment does not hold, or holds at a version the widgets do not accept; VS Code loads a
widget's code from ``<kernel's sys.prefix>/share/jupyter/nbextensions/<module>/index.js`` and,
offline, shows "No version of module ... is registered" when it is missing. The doctor checks,
in plain words:

- ``jupyter-leaflet`` and ``anywidget`` as lab extensions and as nbextensions, at versions that
  satisfy the widgets' ``_model_module_version`` / ``_view_module_version``;
- ipywidgets' kernel package and its JupyterLab front end at matching major versions;
- GDAL's GTiff and COG drivers;
- the overview cache folder writable;
- the API reachable, when ``JOBTASK_API_URL`` is set.

The checks are pure functions of what was found (:func:`module_checks`, :func:`widgets_check`,
:func:`gdal_check`, :func:`cache_check`, :func:`api_check`); :func:`run_checks` gathers the facts.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

API_TIMEOUT = 5.0
FRONT_END_MAJOR = {7: 3, 8: 5}  # ipywidgets' major -> @jupyter-widgets/jupyterlab-manager's major
_VERSION = re.compile(r"(\d+)(?:\.(\d+|[x*]))?(?:\.(\d+|[x*]))?")


@dataclass(frozen=True)
class Check:
    """One check's outcome: what was checked, whether it passed, what was found and what to do."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        """The check as one line (two when it failed: the fix)."""
        text = f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"
        return text if self.ok or not self.fix else f"{text}\n      fix: {self.fix}"


def satisfies(version: str, spec: str) -> bool:
    """Whether ``version`` (``1.2.3``) meets an npm-style ``spec``: exact, ``^``, ``~``, ``x`` or ``*``.

    Raises:
        ValueError: when ``version`` or ``spec`` is not in one of those forms.
    """
    have = _parts(version, "version")
    if any(p is None for p in have):
        raise ValueError(f"version {version!r} must be MAJOR.MINOR.PATCH")
    spec = spec.strip()
    if spec in {"*", "x", ""}:
        return True
    op = spec[0] if spec[0] in "^~" else ""
    want = _parts(spec[len(op) :], "version range")
    fixed = [p for p in want if p is not None]  # the parts given, before any x or *
    low = tuple(fixed + [0] * (3 - len(fixed)))
    if have < low:
        return False
    if op == "^":  # the first non-zero part given is kept (^0.20 is 0.20.x, ^1.2 is 1.x)
        keep = next((i for i, p in enumerate(fixed) if p != 0), len(fixed) - 1) + 1
    elif op == "~":  # ~1.2.3 and ~1.2 are 1.2.x, ~1 is 1.x
        keep = 2 if len(fixed) > 1 else 1
    else:
        keep = len(fixed)
    return have[:keep] == tuple(fixed[:keep])


def _parts(text: str, what: str) -> tuple[int | None, ...]:
    match = _VERSION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{what} {text!r} is not MAJOR[.MINOR[.PATCH]] (x or * allowed)")
    parts = [None if g in {None, "x", "*"} else int(g) for g in match.groups()]
    for i, part in enumerate(parts):  # nothing given after an x
        if part is None:
            parts[i:] = [None] * (3 - i)
            break
    return tuple(parts)


def module_checks(data_dirs: Sequence[Path], required: Mapping[str, Iterable[str]]) -> list[Check]:
    """Each front-end module as a lab extension and as an nbextension, at an accepted version.

    Args:
        data_dirs: Jupyter data folders (``share/jupyter``), searched in order.
        required: Each module's version ranges the kernel's widgets ask for.
    """
    checks = []
    for module, specs in sorted(required.items()):
        specs = sorted(set(specs))
        wanted = " and ".join(specs)
        lab = _first(d / "labextensions" / module / "package.json" for d in data_dirs)
        lab_version = _package_version(lab) if lab else None
        nb = _first(d / "nbextensions" / module / "index.js" for d in data_dirs)
        # one wheel ships both: the nbextension's minified index.js states no version of its own
        nb_version = lab_version if nb and lab and nb.parents[2] == lab.parents[2] else None
        install = f"pip install the Python package that ships {module} into the kernel's environment"
        for kind, path, version in (("lab extension", lab, lab_version), ("nbextension", nb, nb_version)):
            name = f"{module} {kind}"
            if path is None:
                where = ", ".join(str(d / f"{kind.replace(' ', '')}s") for d in data_dirs) or "no Jupyter data folder"
                fix = f"{install}; VS Code and the classic notebook load it from nbextensions/{module}/index.js"
                checks.append(Check(name, False, f"missing (looked in {where})", fix))
            elif version is None:
                fix = f"{install} (its lab extension's package.json states the version)"
                checks.append(Check(name, False, f"{path} has no package.json beside it; wanted {wanted}", fix))
            elif not all(satisfies(version, spec) for spec in specs):
                fix = f"install the version of {module}'s Python package that matches its widgets ({wanted})"
                checks.append(Check(name, False, f"{version} at {path}, but the widgets want {wanted}", fix))
            else:
                checks.append(Check(name, True, f"{version} satisfies {wanted} ({path})"))
    return checks


def widgets_check(kernel: str | None, front_end: str | None) -> Check:
    """ipywidgets in the kernel and its JupyterLab front end (``@jupyter-widgets/jupyterlab-manager``)."""
    name = "ipywidgets kernel and front end"
    if kernel is None:
        return Check(name, False, "ipywidgets is not installed in the kernel", 'pip install "ipywidgets>=8.1"')
    if front_end is None:
        fix = 'pip install "jupyterlab_widgets>=3"  (it ships @jupyter-widgets/jupyterlab-manager)'
        return Check(name, False, f"ipywidgets {kernel}, but no @jupyter-widgets/jupyterlab-manager", fix)
    want = FRONT_END_MAJOR.get(int(kernel.split(".")[0]))
    if want is None or int(front_end.split(".")[0]) != want:
        fix = "install ipywidgets and jupyterlab_widgets together: pip install -U ipywidgets jupyterlab_widgets"
        return Check(name, False, f"ipywidgets {kernel} needs jupyterlab-manager {want}.x, found {front_end}", fix)
    return Check(name, True, f"ipywidgets {kernel} with jupyterlab-manager {front_end}")


def gdal_check(drivers: Iterable[str]) -> Check:
    """GDAL's GTiff and COG drivers, which read every raster the map and the plots show."""
    missing = [d for d in ("GTiff", "COG") if d not in set(drivers)]
    if missing:
        fix = "reinstall rasterio from its wheels (pip install --force-reinstall rasterio); check GDAL_SKIP"
        return Check("GDAL drivers", False, f"{' and '.join(missing)} missing", fix)
    return Check("GDAL drivers", True, "GTiff and COG")


def cache_check(folder: Path) -> Check:
    """The overview cache folder can be made and written to."""
    name = "overview cache"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except OSError as exc:
        fix = "set JOBTASK_WIDGETS_CACHE to a folder you can write to"
        return Check(name, False, f"{folder} is not writable ({exc.strerror or type(exc).__name__})", fix)
    return Check(name, True, f"{folder} is writable")


def api_check(url: str | None, timeout: float = API_TIMEOUT) -> Check | None:
    """The API answers at ``url`` (any HTTP answer counts); ``None`` when no URL is set."""
    if not url:
        return None
    import requests

    try:
        answer = requests.get(url, timeout=timeout)
    except requests.RequestException as exc:
        fix = "start the server (jobtask-widgets serve ROOT) or correct JOBTASK_API_URL"
        return Check("API", False, f"{url} did not answer ({type(exc).__name__})", fix)
    return Check("API", True, f"{url} answers (HTTP {answer.status_code})")


def required_modules() -> dict[str, set[str]]:
    """The front-end modules and versions the package's widgets ask for (ipyleaflet, anywidget)."""
    import anywidget
    import ipyleaflet

    from .tilelayer import RasterTileLayer

    found: dict[str, set[str]] = {}
    for cls in (ipyleaflet.Map, ipyleaflet.GeoJSON, anywidget.AnyWidget, RasterTileLayer):
        traits = cls.class_traits()
        for kind in ("model", "view"):
            module = traits[f"_{kind}_module"].default_value
            found.setdefault(module, set()).add(traits[f"_{kind}_module_version"].default_value)
    return found


def data_dirs(prefix: Path | None = None) -> list[Path]:
    """``PREFIX/share/jupyter`` when a prefix is given, else every Jupyter data folder."""
    if prefix is not None:
        return [prefix / "share" / "jupyter"]
    try:
        from jupyter_core.paths import jupyter_path
    except ImportError:
        return [Path(sys.prefix) / "share" / "jupyter"]
    return [Path(p) for p in jupyter_path()]


def run_checks(prefix: Path | None = None) -> list[Check]:
    """Every check on this environment (front-end files under ``prefix`` when given)."""
    import rasterio

    from .overviews import cache_root

    dirs = data_dirs(prefix)
    manager = _first(d / "labextensions" / "@jupyter-widgets" / "jupyterlab-manager" / "package.json" for d in dirs)
    with rasterio.Env() as env:  # scoped: reads the registered drivers, sets nothing
        drivers = env.drivers()
    checks = [
        *module_checks(dirs, required_modules()),
        widgets_check(_installed("ipywidgets"), _package_version(manager) if manager else None),
        gdal_check(drivers),
        cache_check(cache_root()),
    ]
    api = api_check(os.environ.get("JOBTASK_API_URL"))
    return checks if api is None else [*checks, api]


def _first(paths: Iterable[Path]) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def _package_version(path: Path) -> str | None:
    try:
        version = json.loads(path.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return version if isinstance(version, str) else None


def _installed(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


__all__ = [
    "Check",
    "api_check",
    "cache_check",
    "data_dirs",
    "gdal_check",
    "module_checks",
    "required_modules",
    "run_checks",
    "satisfies",
    "widgets_check",
]
