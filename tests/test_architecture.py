"""The package's layers, read from its imports: each module imports only its own layer or
the layers below it, the schema imports nothing of the package, and no modules import
each other in a circle. README's architecture picture lists the same layers."""

import ast
import functools
import pathlib
import re

from conftest import REPO

PACKAGE = REPO / "resnet_flax"
# Bottom to top. A module's layer is its sub-package, or its own name for a top-level
# module; the bottom layer (the schema and two helpers) imports nothing of the package.
LAYERS = (("config", "suggest", "quiet"), ("models",), ("data",), ("pretrained",), ("train",),
          ("workdir",), ("run",), ("export",), ("speed",), ("cli",))
# Thin modules kept at documented `python -m` paths (and the public face): they hand on
# to the layers and nothing imports them.
ENTRY_POINTS = ("__init__.py", "main.py", "predict.py", "summary.py", "benchmark.py",
                "data/build.py", "export/__main__.py")


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, pathlib.Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(path: pathlib.Path, known: dict) -> set[str]:
    """The package's modules ``path`` imports, at its top or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out |= {n for n in names if n in known and n != "resnet_flax"}
    return out


def layer(name: str) -> int:
    room = name.split(".")[1] if "." in name else name
    return next(i for i, rooms in enumerate(LAYERS) if room in rooms)


def is_entry_point(path: pathlib.Path) -> bool:
    return str(path.relative_to(PACKAGE)) in ENTRY_POINTS


@functools.cache  # Parsed once: the tests below ask for it per edge.
def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(path, known) for name, path in known.items()
            if not is_entry_point(path)}


def test_every_module_has_a_layer():
    for name, path in modules().items():
        if not is_entry_point(path):
            layer(name)  # StopIteration: a room no layer names.


def test_imports_point_down_and_the_schema_imports_nothing():
    upward = [f"{a} -> {b}" for a, targets in graph().items() for b in targets
              if b in graph() and layer(b) > layer(a)]
    assert not upward, "imports that point up: " + ", ".join(sorted(upward))
    base = [f"{a} -> {b}" for a, targets in graph().items() if layer(a) == 0
            for b in targets]
    assert not base, "the bottom layer imports the package: " + ", ".join(base)


def test_nothing_imports_an_entry_point():
    entry = {module_name(PACKAGE / p) for p in ENTRY_POINTS} - {"resnet_flax"}
    users = [f"{a} -> {b}" for a, targets in graph().items() for b in targets & entry]
    assert not users, ", ".join(users)


def test_no_modules_import_each_other_in_a_circle():
    edges = {a: {b for b in targets if b in graph()} for a, targets in graph().items()}
    # A module that imports its own package's __init__ (a parent) is not a circle.
    edges = {a: {b for b in bs if not a.startswith(b + ".")} for a, bs in edges.items()}
    state, circles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                circles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not circles, "circles: " + "; ".join(circles)


def test_readme_pictures_the_layers_top_down():
    text = (REPO / "README.md").read_text()
    section = text.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    picture = section.split("```", 2)[1]

    def line_of(room):  # The picture's line that names the room (``data/``, ``config.py``).
        found = re.search(rf"(?<![\w./]){room}(/|\.py)", picture)
        assert found, f"README's architecture picture has no line for {room}"
        return picture.count("\n", 0, found.start())

    lines = [[line_of(room) for room in rooms] for rooms in reversed(LAYERS)]
    firsts = [min(layer_lines) for layer_lines in lines]
    assert firsts == sorted(firsts), "README's picture lists the layers in another order"
