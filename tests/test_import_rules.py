"""Dependencies point one way, read from the source's own import statements.

- the library (``fsd`` without its command-line composition root ``fsd.cli`` and ``fsd.__main__``)
  imports neither ``search`` nor ``service``;
- ``search`` and ``service`` import only the library (and themselves), never each other;
- nothing but the composition root imports the composition root;
- inside the library, the model code reads no data sets, the artifacts and data layers import no
  training machinery, and the training engine does not generate data;
- inside the service, the data's flow points one way: ``http -> ingest -> analysis -> delivery``,
  with ``common`` under all of them; no stage imports the HTTP layer or a stage before it, and
  only the entry points (``service``, ``service.__main__``, ``service.cli``) sit outside the stages;
- no import cycle anywhere in the project.

Every import counts, also those inside functions and under ``TYPE_CHECKING``. The checks are
tested on synthetic import graphs too, so a broken check cannot pass silently.
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

#: the service's stages in the order the data flows through them; each imports only those after it
SERVICE_FLOW = ("service.http", "service.ingest", "service.analysis", "service.delivery", "service.common")
#: the service's entry points, above the flow (they start the HTTP layer; nothing imports them)
SERVICE_ENTRY = frozenset({"service", "service.__main__", "service.cli"})


def import_edges(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of ``known`` that the source of ``module`` imports, resolved as Python does:
    ``from a import b`` is the module ``a.b`` when there is one, else ``a``; ``import a.b`` is
    ``a.b`` (or its nearest known parent). The parent packages Python loads on the way do not
    count: they are not imports the module's author wrote."""
    package = module if is_package else module.rpartition(".")[0]

    def nearest(name: str) -> str:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(nearest(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                target = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in known else nearest(target))
    found.discard("")
    found.discard(module)
    return found


def project_graph() -> dict[str, set[str]]:
    """Every project module and the project modules it imports."""
    known = set(MODULES)
    graph = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = module_name(path)
            graph[name] = import_edges(path.read_text(), name, path.name == "__init__.py", known)
    return graph


GRAPH = project_graph()


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: its strongly connected components of more than one module
    (Tarjan's algorithm, iterative), each sorted; a module importing itself is one too."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    cycles.append(sorted(component))
    return sorted(cycles)


def flow_stage(name: str) -> int | None:
    """The position of ``name``'s stage in :data:`SERVICE_FLOW`, or None outside the stages."""
    return next((rank for rank, stage in enumerate(SERVICE_FLOW) if within(name, stage)), None)


def against_the_flow(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs of service modules where a stage imports the HTTP layer or a
    stage before its own, or anything imports an entry point."""
    wrong = []
    for name, imports in graph.items():
        rank = flow_stage(name)
        for imported in sorted(imports):
            if imported in SERVICE_ENTRY and name not in SERVICE_ENTRY:
                wrong.append((name, imported))
            elif rank is not None and (imported_rank := flow_stage(imported)) is not None and imported_rank < rank:
                wrong.append((name, imported))
    return sorted(wrong)


def in_composition_root(name: str) -> bool:
    return any(within(name, prefix) for prefix in COMPOSITION_ROOT)


def test_the_scan_sees_the_whole_project():
    assert {"fsd.cli.app", "fsd.engine.loop", "search.loop", "service.http.app", "fsd.artifacts.loading"} <= set(MODULES)
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


def test_import_edges_resolve_submodules_and_names():
    known = {"fsd", "fsd.artifacts", "fsd.artifacts.torchscript", "fsd.artifacts.loading", "fsd.io", "fsd.io.dicom"}
    source = "from fsd.artifacts import torchscript, ArtifactError\nimport fsd.io.dicom.reader\nfrom . import loading\n"
    assert import_edges(source, "fsd.artifacts.loading", False, known) == {"fsd.artifacts.torchscript", "fsd.artifacts", "fsd.io.dicom"}


def test_the_cycle_check_finds_cycles_and_only_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": set(), "f": {"f"}, "g": {"a", "x.not.in.graph"}}
    assert import_cycles(graph) == [["a", "b", "c"], ["f"]]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle_anywhere_in_the_project():
    assert import_cycles(GRAPH) == []


def test_the_flow_check_refuses_imports_against_the_flow():
    graph = {
        "service.delivery.queue": {"service.ingest.collector", "service.common.metrics"},
        "service.analysis.study": {"service.http.errors", "service.delivery.outbox"},
        "service.ingest.stow": {"service.analysis.pool", "service.delivery.outbox"},
        "service.common.metrics": {"service.delivery.sr"},
        "service.http.app": {"service.ingest.collector", "service.cli"},
        "service.cli": {"service.http.app"},
    }
    assert against_the_flow(graph) == [
        ("service.analysis.study", "service.http.errors"),
        ("service.common.metrics", "service.delivery.sr"),
        ("service.delivery.queue", "service.ingest.collector"),
        ("service.http.app", "service.cli"),
    ]


def test_every_service_module_sits_in_a_stage_of_the_flow():
    service = sorted(name for name in GRAPH if within(name, "service"))
    assert [name for name in service if flow_stage(name) is None and name not in SERVICE_ENTRY] == []
    assert {stage for stage in SERVICE_FLOW} <= set(service), "every stage is a package"


@pytest.mark.parametrize("name", sorted(n for n in GRAPH if within(n, "service")))
def test_the_service_imports_down_its_flow(name):
    wrong = [imported for importer, imported in against_the_flow({name: GRAPH[name]}) if importer == name]
    assert not wrong, f"{name} imports {wrong} against the flow {' -> '.join(SERVICE_FLOW)}"
