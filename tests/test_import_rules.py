"""Dependencies point one way, read from the source's own import statements.

- the library (``fsd`` without its command-line composition root ``fsd.cli`` and ``fsd.__main__``)
  imports neither ``search`` nor ``service``;
- ``search`` and ``service`` import only the library (and themselves), never each other;
- nothing but the composition root imports the composition root;
- inside the library, the model code reads no data sets, the artifacts and data layers import no
  training machinery, and the training engine does not generate data.

Every import counts, also those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fsd", "search", "service")
COMPOSITION_ROOT = ("fsd.cli", "fsd.__main__")

#: library module prefix -> library module prefixes it must not import
LIBRARY_LAYERS: dict[str, tuple[str, ...]] = {
    "fsd.models": ("fsd.data", "fsd.engine", "fsd.eval", "fsd.artifacts", "fsd.export", "fsd.inference", "fsd.io"),
    "fsd.nn": ("fsd.data", "fsd.engine", "fsd.models", "fsd.artifacts", "fsd.export", "fsd.inference"),
    "fsd.data": ("fsd.models", "fsd.engine", "fsd.artifacts", "fsd.export", "fsd.inference"),
    "fsd.io": ("fsd.data", "fsd.models", "fsd.engine", "fsd.artifacts", "fsd.export", "fsd.inference"),
    "fsd.eval": ("fsd.data", "fsd.models", "fsd.engine", "fsd.artifacts", "fsd.export", "fsd.inference"),
    "fsd.preprocess": ("fsd.data", "fsd.models", "fsd.engine", "fsd.artifacts", "fsd.io"),
    "fsd.artifacts": ("fsd.engine", "fsd.export", "fsd.inference", "fsd.data"),
    "fsd.inference": ("fsd.engine", "fsd.export"),
    "fsd.engine": ("fsd.data.synth", "fsd.export", "fsd.inference"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Absolute names of every module the source of ``module`` imports (relative imports resolved;
    ``from a import b`` counts as ``a`` and ``a.b``)."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def project_modules() -> dict[str, set[str]]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            imports = imported_modules(path.read_text(), module_name(path), path.name == "__init__.py")
            modules[module_name(path)] = {m for m in imports if m.split(".")[0] in PACKAGES}
    return modules


MODULES = project_modules()


def in_composition_root(name: str) -> bool:
    return any(within(name, prefix) for prefix in COMPOSITION_ROOT)


def test_the_scan_sees_the_whole_project():
    assert {"fsd.cli.app", "fsd.engine.loop", "search.loop", "service.app", "fsd.artifacts.loading"} <= set(MODULES)
    assert "search.supernet" in MODULES["search.loop"] and "fsd.engine.loop" in MODULES["search.loop"]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("fsd") and not in_composition_root(n)))
def test_the_library_imports_no_app(name):
    wrong = sorted(m for m in MODULES[name] if m.split(".")[0] in ("search", "service") or in_composition_root(m))
    assert not wrong, f"{name} (library) imports {wrong}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.split(".")[0] in ("search", "service")))
def test_search_and_service_import_only_the_library(name):
    own = name.split(".")[0]
    other = "service" if own == "search" else "search"
    wrong = sorted(m for m in MODULES[name] if within(m, other) or in_composition_root(m))
    assert not wrong, f"{name} imports {wrong}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("fsd") and not in_composition_root(n)))
def test_library_layers(name):
    for layer, forbidden in LIBRARY_LAYERS.items():
        if within(name, layer):
            wrong = sorted(m for m in MODULES[name] if any(within(m, f) for f in forbidden))
            assert not wrong, f"{name} ({layer}) imports {wrong}"


def test_imports_inside_functions_and_relative_imports_are_seen():
    source = "from __future__ import annotations\n\ndef f():\n    from search.loop import search\n    from ..models import builder\n"
    found = imported_modules(source, "fsd.engine.probe")
    assert {"search.loop", "search.loop.search", "fsd.models", "fsd.models.builder"} <= found
    assert imported_modules("from . import reader\n", "fsd.io.dicom", is_package=True) >= {"fsd.io.dicom.reader"}
