"""The design's import directions, checked by reading every import statement (no importing).

Each rule: modules under ``source`` may not import anything under the ``forbidden`` prefixes
(``except`` names allowed exceptions). Imports inside functions count (a lazy import is still a
dependency); relative imports are resolved against the module's package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QT = ("PySide6", "shiboken6", "pyqtgraph", "qasync")
ENGINE_PACKAGES = ("engine.backtest", "engine.book", "engine.commands", "engine.execution",
                   "engine.feeds", "engine.fix", "engine.ipc", "engine.kernel", "engine.main",
                   "engine.node", "engine.risk", "engine.store", "engine.strategy",
                   "engine.venue", "engine.logs")

#: (rule, source prefix, forbidden prefixes, allowed exceptions)
RULES: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = [
    ("the engine imports no Qt, app or widgets", "engine", ("app", "widgets") + QT, ()),
    ("widgets take plain data: no app, no engine", "widgets", ("app", "engine"), ()),
    ("feeds know no shared-memory layout", "engine.feeds", ("engine.ipc",), ()),
    ("books know no shared-memory layout", "engine.book", ("engine.ipc",), ()),
    ("strategies know no shared-memory layout", "engine.strategy", ("engine.ipc",), ()),
    ("execution knows no shared-memory layout", "engine.execution", ("engine.ipc",), ()),
    ("risk knows no shared-memory layout", "engine.risk", ("engine.ipc",), ()),
    ("core is the ground floor", "engine.core", ENGINE_PACKAGES, ()),
    ("books stand on core alone", "engine.book", tuple(p for p in ENGINE_PACKAGES
                                                       if p != "engine.book"), ()),
    ("FIX knows no orders, exchange or market data", "engine.fix",
     ("engine.execution", "engine.venue", "engine.feeds", "engine.book", "engine.store",
      "engine.risk", "engine.strategy", "engine.kernel", "engine.node"), ()),
    ("strategies never reach execution, FIX, the store or venues", "engine.strategy",
     ("engine.execution", "engine.fix", "engine.store", "engine.venue", "engine.kernel",
      "engine.node"), ()),
    ("the kernel knows no shared memory", "engine.kernel", ("engine.ipc", "engine.node"),
     ("engine.ipc.commands",)),
    ("the desk never imports execution, risk or strategies", "app",
     ("engine.execution", "engine.risk", "engine.strategy", "engine.kernel", "engine.node"), ()),
]


def _module(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, root: Path):
    """(line, imported module) of every import in one file, relative ones resolved."""
    mod = _module(path, root)
    package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            for a in node.names:  # "from engine import ipc" imports engine.ipc
                yield node.lineno, f"{target}.{a.name}"


def scan(root: Path) -> dict[str, list[tuple[Path, int, str]]]:
    """Every module under app/, engine/ and widgets/ with its imports."""
    out: dict[str, list[tuple[Path, int, str]]] = {}
    for top in ("app", "engine", "widgets"):
        for path in sorted((root / top).rglob("*.py")):
            out[_module(path, root)] = [(path, line, m) for line, m in _imports(path, root)]
    return out


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(modules: dict, source: str, forbidden: tuple[str, ...],
               allowed: tuple[str, ...] = ()) -> list[str]:
    bad = []
    for mod, imports in modules.items():
        if not _under(mod, source):
            continue
        for path, line, target in imports:
            if any(_under(target, a) for a in allowed):
                continue
            if any(_under(target, f) for f in forbidden) and not _under(target, source):
                bad.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
                           f":{line} -> {target}")
    return sorted(set(bad))


MODULES = scan(ROOT)


@pytest.mark.parametrize("rule, source, forbidden, allowed", RULES, ids=[r[0] for r in RULES])
def test_import_rule(rule, source, forbidden, allowed):
    bad = violations(MODULES, source, forbidden, allowed)
    assert not bad, f"{rule}:\n" + "\n".join(bad)


def test_the_scan_sees_the_code():
    engine = [m for m in MODULES if _under(m, "engine")]
    assert len(engine) > 50, engine
    assert any(t == "engine.ipc.layout" for _p, _l, t in MODULES["engine.ipc.publisher"])


def test_the_checker_catches_violations(tmp_path):
    """A fake tree with an absolute and a relative forbidden import: both are caught."""
    risk = tmp_path / "engine" / "risk"
    risk.mkdir(parents=True)
    for d in (tmp_path / "engine", risk):
        (d / "__init__.py").write_text("")
    (risk / "x.py").write_text("from engine.ipc.layout import KILL_DTYPE\n")
    (risk / "y.py").write_text("def f():\n    from ..ipc import layout\n")
    (risk / "z.py").write_text("from engine.core.records import KILL_ROW\n")
    modules = {}
    for path in sorted((tmp_path / "engine").rglob("*.py")):
        modules[_module(path, tmp_path)] = [(path, line, m) for line, m in _imports(path, tmp_path)]
    bad = violations(modules, "engine.risk", ("engine.ipc",))
    assert any("x.py:1 -> engine.ipc.layout" in b for b in bad), bad
    assert any("y.py:2 -> engine.ipc" in b for b in bad), bad
    assert not any("z.py" in b for b in bad), bad
