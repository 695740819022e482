"""The design's import rules, checked by reading every import statement."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QT = ("PySide6", "pyqtgraph", "qasync", "shiboken6")


def imports(pkg: str):
    for path in sorted((ROOT / pkg).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    yield path, a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield path, node.module.split(".")[0]


@pytest.mark.parametrize("pkg, forbidden", [
    ("engine", ("app", "widgets") + QT),
    ("widgets", ("app", "engine")),
])
def test_package_does_not_import(pkg, forbidden):
    bad = [f"{p.relative_to(ROOT)} imports {m}" for p, m in imports(pkg) if m in forbidden]
    assert not bad, "\n".join(bad)


def test_the_rule_checker_sees_imports():
    found = {m for _, m in imports("app")}
    assert {"engine", "widgets", "PySide6"} <= found
