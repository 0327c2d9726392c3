"""The import-layer contract of tlc_probe, and docs/ARCHITECTURE.md kept true by it.

Read from the source (AST), every import statement, also those inside functions:

* a module imports only its own component or components of lower layers (:data:`LAYERS`,
  bottom first; components in one layer are independent of each other);
* nothing inside the package imports the package root (``tlc_probe/__init__.py`` is the
  public API's re-export facade only);
* viz depends neither on models nor on tlc, directly or through what it imports (the
  closure over imported modules and their parent packages, the root facade excepted);
* docs/ARCHITECTURE.md lists every module of the package once, in its layer.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "tlc_probe"
#: Components, bottom layer first.
LAYERS: list[tuple[str, ...]] = [
    ("_version", "sizes", "tensors"),
    ("sites",),
    ("functional",),
    ("tlc",),
    ("tiling", "models", "data"),
    ("schemes",),
    ("probe",),
    ("store",),
    ("metrics",),
    ("viz",),
    ("jobs", "explore"),
    ("cli",),
]
LAYER_OF = {c: i for i, layer in enumerate(LAYERS) for c in layer}


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def scan(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> file of every module of the package ``root/tlc_probe``."""
    return {_module_name(p, root): p for p in sorted((root / "tlc_probe").rglob("*.py"))}


MODULES = scan()


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, absolute module name) of every tlc_probe import in a module; ``from X
    import y`` counts as an import of X.y when X.y is a module, else of X."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("tlc_probe")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("tlc_probe"):
                continue
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
            found += [(node.lineno, t) for t in subs] or [(node.lineno, target)]
    return found


def _component(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def violations(modules: dict[str, Path]) -> list[str]:
    """Every import that goes up or sideways between components, or to the package root."""
    bad = []
    for name, path in modules.items():
        src = _component(name)
        if src is None:  # the root facade re-exports from everywhere
            continue
        for line, target in _imports(name, path, modules):
            dst = _component(target)
            where = f"{name}:{line} imports {target}"
            if dst is None:
                bad.append(f"{where} (the package root)")
            elif dst != src and LAYER_OF.get(dst, -1) >= LAYER_OF.get(src, -1):
                bad.append(f"{where} ({dst} is not below {src})")
    return bad


def closure(start: str, modules: dict[str, Path]) -> set[str]:
    """Modules ``start`` depends on: what it imports, their parent packages (importing
    a.b.c runs a.b's __init__), recursively; the root facade excepted."""
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m in seen or m not in modules:
            continue
        seen.add(m)
        for _, target in _imports(m, modules[m], modules):
            parts = target.split(".")
            todo += [".".join(parts[:k]) for k in range(2, len(parts) + 1)]
    return seen


def test_every_module_has_a_layer():
    components = {_component(m) for m in MODULES} - {None}
    assert components <= set(LAYER_OF), f"modules outside LAYERS: {components - set(LAYER_OF)}"


def test_imports_only_go_down_and_never_to_the_root():
    bad = violations(MODULES)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _component(m) == "viz"))
def test_viz_depends_neither_on_models_nor_on_tlc(module):
    reached = {_component(m) for m in closure(module, MODULES)}
    assert not reached & {"models", "tlc", "store", "jobs", "cli"}, sorted(reached)


def test_the_checker_finds_violations(tmp_path):
    pkg = tmp_path / "tlc_probe"
    (pkg / "viz").mkdir(parents=True)
    (pkg / "models").mkdir()
    for f in ("__init__.py", "viz/__init__.py", "models/__init__.py", "models/zoo.py"):
        (pkg / f).write_text("")
    (pkg / "sites.py").write_text("from .jobs import reproduce\nfrom . import __version__\n")
    (pkg / "viz" / "draw.py").write_text("def f():\n    from ..models import zoo\n")
    (pkg / "viz" / "ok.py").write_text("from . import draw\n")
    modules = scan(tmp_path)
    bad = violations(modules)
    assert any("tlc_probe.sites:1 imports tlc_probe.jobs" in b for b in bad)
    assert any("tlc_probe.sites:2" in b and "package root" in b for b in bad)
    assert not any("viz.draw" in b for b in bad)  # viz above models: allowed by layers ...
    assert "tlc_probe.models.zoo" in closure("tlc_probe.viz.ok", modules)  # ... but seen here


def _architecture_table() -> dict[str, str]:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    rows = re.findall(r"^\| `(tlc_probe/[^`]+\.py)` \| ([a-z_ |]+?) \|", text, re.M)
    return dict(rows)


def test_architecture_md_layers_are_the_contract():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    rows = re.findall(r"^\| (\d+) \| ((?:`\w+`(?:, )?)+) \|", text, re.M)
    doc = [tuple(re.findall(r"`(\w+)`", comps)) for _, comps in rows]
    assert [int(i) for i, _ in rows] == list(range(len(LAYERS)))
    assert doc == LAYERS


def test_architecture_md_lists_every_module_in_its_layer():
    table = _architecture_table()
    files = {str(p.relative_to(ROOT)) for p in MODULES.values()}
    assert set(table) == files, {
        "missing from ARCHITECTURE.md": sorted(files - set(table)),
        "listed but absent": sorted(set(table) - files),
    }
    for path, layer in table.items():
        comp = _component(_module_name(ROOT / path))
        if comp is not None:
            assert layer.strip() == comp, f"{path}: listed under {layer!r}, is in {comp!r}"
