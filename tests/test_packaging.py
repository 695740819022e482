"""The installer build's checks (packaging/build.py) and how a packaged helmdesk starts its
own processes. Building a whole bundle takes minutes: see packaging/build.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.core import paths

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packaging"))

import build  # noqa: E402  (packaging/build.py)


def test_secrets_in_the_clear_are_named_references_pass():
    data = {"database": {"url": "sqlite:///x.db", "password": "hunter2"},
            "venues": [{"name": "A", "password": "env:FIX_A"},
                       {"name": "B", "logon_password": "s3cret"},
                       {"name": "C", "api_key": "keyring:helmdesk-c"}],
            "engine": {"token": ""}}
    assert build.secrets_in_clear(data) == ["database.password", "venues[1].logon_password"]


def test_the_build_refuses_a_profile_with_a_secret_and_says_which_key(tmp_path, capsys):
    demo = (ROOT / "resources" / "profiles" / "demo.toml").read_text()
    bad = tmp_path / "ws.toml"
    bad.write_text(demo + '\n[database]\npassword = "hunter2"\n')
    assert build.main(["--profile", str(bad), "--check-only"]) == 2
    err = capsys.readouterr().err
    assert f"build.py: {bad}: database.password holds a secret in the clear" in err
    assert "references only (env:NAME or keyring:NAME)" in err


def test_the_build_refuses_what_the_engine_would_and_names_the_file(tmp_path, capsys):
    bad = tmp_path / "ws.toml"
    bad.write_text('[engine]\ninstance = "x"\nidle = "dozing"\n')
    assert build.main(["--profile", str(bad), "--check-only"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "idle" in err
    assert build.main(["--profile", str(tmp_path / "none.toml"), "--check-only"]) == 2
    assert f"no profile at {tmp_path / 'none.toml'}" in capsys.readouterr().err


def test_the_demo_profile_passes_and_says_what_it_builds(capsys):
    assert build.main(["--profile", str(ROOT / "resources/profiles/demo.toml"),
                       "--check-only"]) == 0
    out = capsys.readouterr().out
    assert "workstation 'demo-desk', instance 'demo', 4 instruments, 3 venues" in out


def test_a_packaged_helmdesk_runs_its_modules_through_itself(monkeypatch):
    assert paths.module_command("engine.store.writer", "--batch", "8") == [
        sys.executable, "-m", "engine.store.writer", "--batch", "8"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert paths.module_command("engine", "--profile", "p.toml") == [
        sys.executable, "--run-module", "engine", "--profile", "p.toml"]


def test_the_entry_point_runs_a_module_as_main():
    r = subprocess.run([sys.executable, str(ROOT / "packaging" / "entry.py"), "--run-module",
                        "app", "--version"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("helmdesk ")


def test_the_entry_point_without_a_module_is_helmdesk():
    r = subprocess.run([sys.executable, str(ROOT / "packaging" / "entry.py"), "--version"],
                       cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("helmdesk "), r.stderr


def test_the_icon_is_drawn_at_the_sizes_the_desktop_entry_ships(tmp_path, qapp):
    from PySide6.QtGui import QColor, QImage

    from widgets.icon import app_icon, render_png

    for px in (48, 256):
        img = QImage(str(render_png(tmp_path / f"helmdesk-{px}.png", px)))
        assert (img.width(), img.height()) == (px, px)
        assert img.pixelColor(0, 0).alpha() == 0  # rounded corners: transparent
        hub = img.pixelColor(px // 2, px // 2)
        assert hub.alpha() == 255 and hub.name() == QColor("#f0b429").name()  # the wheel's hub
    assert {s.width() for s in app_icon().availableSizes()} >= {16, 32, 48, 256}
