"""The package's shape, checked from its source: no import cycles between modules or packages, no module
importing another's private names, imports inside functions only where a comment says why (start-up), and
every error a user can see derives from ProfileDistError (so the CLI reports it as one line)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import profile_dist
from profile_dist.errors import ProfileDistError

ROOT = Path(profile_dist.__file__).resolve().parent

#: (importing module, imported module, name) -> why the private import stays for now.
PRIVATE_IMPORTS_ALLOWED = {
    ("profile_dist.workflows.improve.bestofn", "profile_dist.workflows.improve.feedback", "_fmt"):
        "improve/ is being rewritten around the one LLM step (issue 13) in a parallel branch; settled at its merge",
}
#: Modules whose function-level imports are not checked yet, and why.
INNER_IMPORTS_UNCHECKED = {
    "profile_dist.workflows.improve.bestofn": "being rewritten around the one LLM step (issue 13) in a parallel branch",
    "profile_dist.workflows.improve.feedback": "being rewritten around the one LLM step (issue 13) in a parallel branch",
}


@dataclass
class ImportGraph:
    modules: dict[str, Path]
    edges: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    private: list[tuple[str, str, str]] = field(default_factory=list)
    inner: list[tuple[str, int, str]] = field(default_factory=list)  # (module, line, source of the import)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph(root: Path) -> ImportGraph:
    """Module-level import edges between the package's modules (``from pkg import mod`` points at ``pkg.mod``),
    cross-module imports of private names, and the package's imports made inside functions."""
    graph = ImportGraph({module_name(p, root): p for p in sorted(root.rglob("*.py"))})
    top = root.name
    for name, path in graph.modules.items():
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                if not base.startswith(top):
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    target = full if full in graph.modules else base
                    if target in graph.modules and target != name:
                        graph.edges[name].add(target)
                    if alias.name.startswith("_") and not alias.name.startswith("__") and full not in graph.modules:
                        graph.private.append((name, base, alias.name))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in graph.modules and alias.name != name:
                        graph.edges[name].add(alias.name)
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    ours = any(a.name.split(".")[0] == top for a in node.names)
                elif isinstance(node, ast.ImportFrom):
                    ours = bool(node.level) or (node.module or "").split(".")[0] == top
                else:
                    continue
                if ours:
                    text = "\n".join(lines[node.lineno - 1: node.end_lineno])
                    graph.inner.append((name, node.lineno, text))
    return graph


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    nodes = sorted(set(edges) | {t for targets in edges.values() for t in targets})

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in nodes:
        if v not in index:
            visit(v)
    return sorted(found)


def package_edges(edges: dict[str, set[str]], top: str) -> dict[str, set[str]]:
    """Edges between the top-level packages (profile_dist.X); imports of the root package itself are left out."""
    def package(m: str) -> str:
        return ".".join(m.split(".")[:2])

    out: dict[str, set[str]] = defaultdict(set)
    for source, targets in edges.items():
        for target in targets:
            if package(source) != package(target) and package(target) != top:
                out[package(source)].add(package(target))
    return out


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return import_graph(ROOT)


# --- the checks on the project ---------------------------------------------------------------------------


def test_no_import_cycle_between_modules(graph):
    assert cycles(graph.edges) == []


def test_no_import_cycle_between_packages(graph):
    assert cycles(package_edges(graph.edges, ROOT.name)) == []


def test_no_module_imports_another_modules_private_names(graph):
    private = [p for p in graph.private if p not in PRIVATE_IMPORTS_ALLOWED]
    assert private == [], "make the name public where it is defined, or move it to a module both can import"


def test_every_import_inside_a_function_says_why(graph):
    silent = [f"{module}:{line}: {text.strip()}" for module, line, text in graph.inner
              if "#" not in text and module not in INNER_IMPORTS_UNCHECKED]
    assert silent == [], "import at the top, or say why it must wait (e.g. '# on use: keeps CLI start-up light')"


def test_every_public_error_class_derives_from_profile_dist_error():
    outside = []
    for info in pkgutil.walk_packages(profile_dist.__path__, "profile_dist."):
        if info.name.rsplit(".", 1)[-1] == "__main__":  # runs the CLI when imported
            continue
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name and issubclass(cls, BaseException) and not name.startswith("_"):
                if not issubclass(cls, ProfileDistError):
                    outside.append(f"{info.name}.{name}")
    assert outside == [], "a user-facing error must derive from profile_dist.errors.ProfileDistError"


# --- the checker itself, on small packages written here ----------------------------------------------------


def write_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_checker_finds_cycles_private_names_and_silent_inner_imports(tmp_path):
    root = write_package(tmp_path, {
        "__init__.py": "",
        "a/__init__.py": "from pkg.a import one\n",
        "a/one.py": "from pkg.b.two import _helper\n",
        "b/__init__.py": "",
        "b/two.py": "def f():\n    from pkg.a import one\n\n\ndef g():\n    from pkg.a import one  # on use: heavy\n\n\n_helper = 1\n",
        "c.py": "from . import d\n",
        "d.py": "from pkg import c\n",
    })
    graph = import_graph(root)
    assert cycles(graph.edges) == [["pkg.a.one", "pkg.b.two"], ["pkg.c", "pkg.d"]]
    assert cycles(package_edges(graph.edges, "pkg")) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.d"]]
    assert graph.private == [("pkg.a.one", "pkg.b.two", "_helper")]
    assert [(m, line, "#" in text) for m, line, text in graph.inner] == [("pkg.b.two", 2, False), ("pkg.b.two", 6, True)]


def test_checker_passes_a_one_way_package(tmp_path):
    root = write_package(tmp_path, {
        "__init__.py": "",
        "low.py": "VALUE = 1\n",
        "mid/__init__.py": "from pkg.mid.core import run\n",
        "mid/core.py": "from pkg import low\n\n\ndef run():\n    return low.VALUE\n",
        "high.py": "from pkg.mid import run\nfrom pkg.low import VALUE as _VALUE\n",
    })
    graph = import_graph(root)
    assert cycles(graph.edges) == [] and cycles(package_edges(graph.edges, "pkg")) == []
    assert graph.private == [] and graph.inner == []  # an alias to a private name is not a private import
