"""The package's import graph (../shared/STYLE.md): no module imports a
``_private`` name of another module, there is no import cycle, and every
entry point setup.cfg declares loads from the module it names."""
import ast
import configparser
import importlib
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "spacy_clinie"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: Set[str], root: Path = ROOT) -> List[Tuple[str, str]]:
    """(module, name) for every ``from X import name`` of the package in the
    file, at any depth (lazy imports inside functions count too); ``name``
    is empty for an imported submodule or a plain ``import X``."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "spacy_clinie":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((sub, "") if sub in modules else (target, alias.name))
        elif isinstance(node, ast.Import):
            out.extend((a.name, "") for a in node.names if a.name.split(".")[0] == "spacy_clinie")
    return out


def graph() -> Tuple[Dict[str, Set[str]], List[Tuple[str, str, str]]]:
    files = {module_name(p): p for p in PKG.rglob("*.py")}
    edges: Dict[str, Set[str]] = {m: set() for m in files}
    private = []
    for mod, path in files.items():
        for target, name in imports(path, set(files)):
            if target in files and target != mod:
                edges[mod].add(target)
            if name.startswith("_") and not name.startswith("__") and target != mod:
                private.append((mod, target, name))
    return edges, private


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan).
    A package's ``__init__`` re-exporting its own submodules is not a cycle:
    edges from a package to the modules inside it are left out."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w.startswith(v + "."):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_another_modules_private_names():
    _, private = graph()
    assert private == [], "\n".join(f"{m} imports {n} from {t}" for m, t, n in private)


def test_no_import_cycle():
    """Lazy imports inside functions count too (STYLE: a lower module never
    imports a higher one, not even lazily)."""
    edges, _ = graph()
    assert cycles(edges) == []


def test_the_checker_sees_private_imports_and_cycles(tmp_path):
    """The two checks above and below can fail: a planted private import
    and a planted cycle are found."""
    a = tmp_path / "spacy_clinie" / "pipeline" / "a.py"
    a.parent.mkdir(parents=True)
    a.write_text("from ..scoring.tac import _secret\n\ndef f():\n    from spacy_clinie.scoring import tac\n")
    found = imports(a, {"spacy_clinie.scoring.tac"}, root=tmp_path)
    assert found == [("spacy_clinie.scoring.tac", "_secret"), ("spacy_clinie.scoring.tac", "")]
    assert cycles({"x": {"y"}, "y": {"z"}, "z": {"x"}, "p": {"p.q"}, "p.q": {"p"}}) == [["x", "y", "z"]]


def entry_points() -> List[Tuple[str, str, str]]:
    cfg = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    cfg.optionxform = str  # keep the names' case
    cfg.read(ROOT / "setup.cfg")
    out = []
    for group, block in cfg["options.entry_points"].items():
        for line in block.strip().splitlines():
            name, _, target = (part.strip() for part in line.partition("="))
            if target.startswith("spacy_clinie"):
                out.append((group, name, target))
    return out


@pytest.mark.parametrize("group,name,target", entry_points())
def test_entry_point_loads(group, name, target):
    """Saved pipelines and configs name these; each must import from the
    module setup.cfg gives (a moved module needs its entry point moved)."""
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    assert callable(obj), f"{group} {name}: {target} is not callable"
