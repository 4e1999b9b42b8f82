"""The package's layers, read from its source: no import cycle (lazy imports included), the headless
core never reaches a widget library or the server framework, the server never reaches the client."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "jobtask_widgets"
WIDGET_LIBRARIES = {"ipywidgets", "ipyleaflet", "anywidget"}
SERVER_LIBRARIES = {"fastapi", "starlette", "uvicorn", "obstore"}
# the widget layer; everything else outside server/ is the headless core
WIDGET_LAYER = {
    "tilelayer", "inspector", "histogram", "mapwidget", "layerpanel", "layercontrols", "widget", "plaintext",
    "browsersave",
}  # fmt: skip
# the documented API's facades: their module-level imports are core; JobTask's map_results() and
# widget() import the widget layer lazily, when a map or a widget is asked for, and open_stac
# (stacsource) makes JobTasks, so it reaches them lazily too
FACADE = "jobtask"
FACADES = {FACADE, "stacsource"}
COMMANDS = {"cli", "demo", "doctor"}  # the entry points: servers, dashboards, the environment check


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, *, lazy: bool = True) -> set[str]:
    """Modules ``name`` imports at run time (``TYPE_CHECKING`` blocks left out), ours resolved."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other, top)
                continue
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import) and (top or lazy):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and (top or lazy):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    target = ".".join([*base, child.module] if child.module else base)
                else:
                    target = child.module or ""
                submodules = {f"{target}.{a.name}" for a in child.names} & MODULES.keys()
                found.update(submodules or {target})  # "from . import mapping" imports a module
            visit(child, inner)

    tree = ast.parse(path.read_text(encoding="utf-8"))
    visit(tree, True)
    if path.name == "__init__.py":  # the public names' lazy table: {"name": "module"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_LAZY" for t in node.targets):
                found.update(f"{name}.{value.value}" for value in node.value.values if lazy)  # type: ignore[attr-defined]
    return found


def ours(modules: set[str]) -> set[str]:
    return {m for m in modules if m in MODULES}


def reach(start: str) -> set[str]:
    """Every module ``start`` can end up importing (ours and third-party top-level names)."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        for target in imports_of(name) - {"jobtask_widgets"}:  # the package's lazy public names are its own
            if target not in seen:
                seen.add(target)
                if target in MODULES:
                    todo.append(target)
    return seen


def short(name: str) -> str:
    return name.removeprefix("jobtask_widgets.")


def test_no_import_cycle_lazy_imports_included() -> None:
    graph = {name: ours(imports_of(name)) - {name} for name in MODULES}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            # importing a/b/c first imports the package a/b, which is no cycle of c's making
            if node.startswith(target + "."):
                continue
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                dfs(target)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            dfs(name)
    assert cycles == [], [" -> ".join(map(short, c)) for c in cycles]


def test_the_headless_core_never_reaches_a_widget_library_or_the_server() -> None:
    core = [
        n for n in MODULES
        if not n.startswith("jobtask_widgets.server") and short(n) not in WIDGET_LAYER | COMMANDS | FACADES
        and n != "jobtask_widgets"
    ]  # fmt: skip
    assert {"jobtask_widgets.client", "jobtask_widgets.view", "jobtask_widgets.savehtml"} <= set(core)
    for name in core:
        reached = reach(name)
        top = {m.split(".")[0] for m in reached}
        assert not top & (WIDGET_LIBRARIES | SERVER_LIBRARIES), (
            short(name),
            top & (WIDGET_LIBRARIES | SERVER_LIBRARIES),
        )
        assert not {short(m) for m in reached} & WIDGET_LAYER, short(name)
        assert not any(m.startswith("jobtask_widgets.server") for m in reached), short(name)


def test_the_facades_import_the_widget_layer_only_lazily() -> None:
    for facade in sorted(FACADES):
        top_level = imports_of(f"jobtask_widgets.{facade}", lazy=False)
        closure = set(top_level)
        for name in ours(top_level):
            closure |= reach(name)
        assert not {m.split(".")[0] for m in closure} & (WIDGET_LIBRARIES | SERVER_LIBRARIES), facade
    top_level = imports_of(f"jobtask_widgets.{FACADE}", lazy=False)
    assert "jobtask_widgets.jobtask" in imports_of("jobtask_widgets.stacsource") - imports_of(
        "jobtask_widgets.stacsource", lazy=False
    )  # open_stac reaches JobTask lazily
    lazy = imports_of(f"jobtask_widgets.{FACADE}") - top_level
    assert {"jobtask_widgets.mapwidget", "jobtask_widgets.widget"} <= lazy  # map_results() and widget()


def test_the_server_never_reaches_the_client_or_a_widget() -> None:
    for name in [n for n in MODULES if n.startswith("jobtask_widgets.server")]:
        reached = reach(name)
        assert "jobtask_widgets.client" not in reached and "jobtask_widgets.jobtask" not in reached, short(name)
        assert not {m.split(".")[0] for m in reached} & WIDGET_LIBRARIES, short(name)


def test_importing_the_core_loads_no_widget_library() -> None:
    modules = ("jobtask", "stacsource", "view", "savehtml", "plotting", "client", "transfer", "remote")
    core = ", ".join(f"jobtask_widgets.{m}" for m in modules)
    code = (
        f"import sys, jobtask_widgets, {core}\n"
        "import jobtask_widgets as jw; jw.JobTask, jw.initialize_jobtask, jw.authenticate, jw.open_stac\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(WIDGET_LIBRARIES | SERVER_LIBRARIES)!r}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"
