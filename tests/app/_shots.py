"""Pictures of widgets for a person to look at: tests/artifacts/ (kept out of git)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"


def save_png(w, name: str) -> Path:
    """``w`` as it looks now, as tests/artifacts/NAME."""
    ARTIFACTS.mkdir(exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():  # the directory keeps itself out of git
        ignore.write_text("*\n")
    path = ARTIFACTS / name
    assert w.grab().save(str(path)), path
    return path
