"""The design's import directions, checked by reading every import statement (nothing is imported).

Every ``.py`` file under ``app/``, ``engine/`` and ``widgets/`` is parsed with :mod:`ast`. An import
counts wherever it is written -- a lazy import inside a function is still a dependency -- except
inside an ``if TYPE_CHECKING:`` block, which never runs. Relative imports are resolved against the
module's package, and ``from pkg import name`` counts as importing ``pkg.name`` when that is a
module of the scanned tree (``from engine import ipc`` imports ``engine.ipc``).

Each row of :data:`RULES` becomes its own test function: modules under ``source`` may not import
anything under the ``forbidden`` prefixes, bar the ``allowed`` ones. Adding a rule is one line.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
TOPS = ("app", "engine", "widgets")
QT = ("PySide6", "shiboken6", "pyqtgraph", "qasync")
DOMAIN = ("engine.feeds", "engine.book", "engine.strategy", "engine.execution", "engine.risk")

#: (rule name, source package prefix, forbidden prefixes, allowed exceptions)
RULES: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = [
    ("engine imports no Qt, app or widgets", "engine", QT + ("app", "widgets"), ()),
    ("widgets import neither app nor engine", "widgets", ("app", "engine"), ()),
    *[(f"{d} knows no shared-memory layout", d, ("engine.ipc",), ()) for d in DOMAIN],
    ("engine.core is the ground floor", "engine.core", ("engine",), ("engine.core",)),
    ("FIX knows no orders, exchange or market data", "engine.fix",
     ("engine.execution", "engine.venue", "engine.feeds", "engine.book", "engine.store",
      "engine.risk", "engine.strategy", "engine.kernel", "engine.node"), ()),
    ("strategies never reach execution, FIX, the store, venues or ipc", "engine.strategy",
     ("engine.execution", "engine.fix", "engine.store", "engine.venue", "engine.ipc",
      "engine.kernel", "engine.node"), ()),
    ("the desk never imports execution, risk or strategies", "app",
     ("engine.execution", "engine.risk", "engine.strategy", "engine.kernel", "engine.node"), ()),
    ("engine.book stands on engine.core alone", "engine.book", ("engine",),
     ("engine.core", "engine.book")),
    ("the kernel knows no shared memory", "engine.kernel", ("engine.ipc", "engine.node"),
     ("engine.ipc.commands",)),
]


class Import(NamedTuple):
    path: Path
    line: int
    target: str  # the imported module, fully qualified


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """ast.walk, minus the bodies of ``if TYPE_CHECKING:`` (their ``else:`` still runs)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for sub in child.orelse:
                yield sub
                yield from _walk(sub)
            continue
        yield child
        yield from _walk(child)


def _imports(path: Path, root: Path, known: set[str]) -> Iterator[Import]:
    """Every import of one file, relative ones resolved; ``known`` = module names of the tree."""
    name = _module_name(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert node.level <= len(package), f"{path}:{node.lineno}: relative import escapes"
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            if len(subs) < len(node.names):  # some names are attributes of the module itself
                yield Import(path, node.lineno, target)
            for sub in subs:
                yield Import(path, node.lineno, sub)
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name)
                       and node.func.id in ("import_module", "__import__")))):
            yield Import(path, node.lineno, node.args[0].value)  # importlib with a literal name


def scan(root: Path) -> dict[str, list[Import]]:
    """Module name -> its imports, for every .py file under app/, engine/ and widgets/ of root."""
    paths = sorted(p for top in TOPS if (root / top).is_dir() for p in (root / top).rglob("*.py"))
    known = {_module_name(p, root) for p in paths}
    return {_module_name(p, root): list(_imports(p, root, known)) for p in paths}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(modules: dict[str, list[Import]], source: str, forbidden: tuple[str, ...],
               allowed: tuple[str, ...] = (), root: Path = ROOT) -> list[str]:
    """``file:line -> imported module`` for every forbidden import made under ``source``."""
    bad = set()
    for name, imports in modules.items():
        if not _under(name, source):
            continue
        for imp in imports:
            if (any(_under(imp.target, f) for f in forbidden)
                    and not any(_under(imp.target, a) for a in allowed)):
                bad.add((imp.path.relative_to(root).as_posix(), imp.line, imp.target))
    return [f"{path}:{line} -> {target}" for path, line, target in sorted(bad)]


MODULES = scan(ROOT)


def _rule_test(rule: str, source: str, forbidden: tuple[str, ...], allowed: tuple[str, ...]):
    def test():
        assert any(_under(m, source) for m in MODULES), f"{rule}: no module under {source}"
        bad = violations(MODULES, source, forbidden, allowed)
        assert not bad, f"{rule} -- {len(bad)} forbidden import(s):\n" + "\n".join(bad)
    test.__doc__ = rule
    return test


for _rule in RULES:
    _name = "test_" + re.sub(r"\W+", "_", _rule[0].lower()).strip("_")
    assert _name not in globals(), f"two rules are named {_rule[0]!r}"
    globals()[_name] = _rule_test(*_rule)
    globals()[_name].__name__ = globals()[_name].__qualname__ = _name
del _rule, _name


def test_the_scan_sees_the_code():
    counts = {top: sum(_under(m, top) for m in MODULES) for top in TOPS}
    assert counts["engine"] > 50 and counts["app"] >= 5 and counts["widgets"] >= 5, counts
    assert sum(map(len, MODULES.values())) > 300, "suspiciously few imports found"
    assert any(i.target == "engine.ipc.layout" for i in MODULES["engine.ipc.publisher"])
    assert any(i.target == "engine.core.profile" for i in MODULES["app.launch"])


def test_the_checker_catches_violations(tmp_path):
    """A fake tree: absolute, relative, lazy and ``from pkg import module`` violations are
    caught; a TYPE_CHECKING-only import and an allowed import are not."""
    files = {
        "engine/__init__.py": "",
        "engine/ipc/__init__.py": "",
        "engine/ipc/layout.py": "KILL_DTYPE = None\n",
        "engine/risk/__init__.py": "",
        "engine/risk/x.py": "from engine.ipc.layout import KILL_DTYPE\n",
        "engine/risk/y.py": "import os\n\n\ndef f():\n    from ..ipc import layout\n",
        "engine/risk/w.py": "from engine import ipc\nfrom . import x\n",
        "engine/risk/v.py": "import importlib\nimportlib.import_module('engine.ipc')\n",
        "engine/risk/z.py": ("from typing import TYPE_CHECKING\n"
                             "from engine.core.records import KILL_ROW\n"
                             "if TYPE_CHECKING:\n    from engine.ipc.layout import KILL_DTYPE\n"),
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    modules = scan(tmp_path)
    assert len(modules) == len(files)
    bad = violations(modules, "engine.risk", ("engine.ipc",), root=tmp_path)
    assert bad == ["engine/risk/v.py:2 -> engine.ipc",
                   "engine/risk/w.py:1 -> engine.ipc",
                   "engine/risk/x.py:1 -> engine.ipc.layout",
                   "engine/risk/y.py:5 -> engine.ipc.layout"], bad
    assert violations(modules, "engine.risk", ("engine",), ("engine.core", "engine.risk"),
                      root=tmp_path) == bad
