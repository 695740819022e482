"""The demo workstation's installer, built for real (CI runs this; elsewhere
HELMDESK_TEST_PACKAGE=1: it takes about four minutes). As root with apt-get (CI), the package
is then installed, run, upgraded, downgraded over a newer schema and removed
(packaging/try-install.sh); otherwise its bundle is run unpacked, without the build's Python."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from engine.store.schema import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    os.environ.get("CI") != "true" and os.environ.get("HELMDESK_TEST_PACKAGE") != "1",
    reason="builds the whole installer (~3 min): CI runs it; HELMDESK_TEST_PACKAGE=1 here")


def _bare_env(tmp: Path, **extra) -> dict:
    """No Python of the build machine anywhere: only the system's bin directories."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "HELMDESK_DATA_DIR": str(tmp / "data"),
            **extra}


@pytest.mark.timeout(1500)
def test_the_demo_installer_builds_and_its_bundle_runs_on_its_own(tmp_path):
    out = tmp_path / "dist"
    r = subprocess.run([sys.executable, "packaging/build.py", "--profile",
                        "resources/profiles/demo.toml", "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=800)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    figures = json.loads(r.stdout.strip().splitlines()[-1])
    deb, tgz = Path(figures["deb"]), Path(figures["tar_gz"])
    assert deb.name == "helmdesk-demo-desk_0.1.0_amd64.deb" and deb.is_file()
    assert tgz.name == "helmdesk-demo-desk-0.1.0.tar.gz" and tgz.is_file()
    sums = dict(reversed(line.split("  ")) for line in
                (out / "SHA256SUMS").read_text().splitlines())
    for f in (deb, tgz):
        assert sums[f.name] == hashlib.sha256(f.read_bytes()).hexdigest()

    info = subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True, text=True,
                          check=True).stdout
    assert "Package: helmdesk-demo-desk" in info and "libxcb-cursor0" in info
    contents = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True,
                              text=True, check=True).stdout
    for path in ("./opt/helmdesk/helmdesk", "./etc/helmdesk/demo-desk.toml",
                 "./usr/bin/helmdesk", "./usr/share/applications/helmdesk.desktop",
                 "./usr/share/icons/hicolor/256x256/apps/helmdesk.png",
                 "./usr/share/icons/hicolor/48x48/apps/helmdesk.png"):
        assert path in contents, path
    # the command runs this workstation's profile and engine unless told otherwise
    fsys = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True,
                          check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(fsys)) as t:
        wrapper = t.extractfile("./usr/bin/helmdesk").read().decode()
        desktop = t.extractfile("./usr/share/applications/helmdesk.desktop").read().decode()
    assert ': "${HELMDESK_PROFILE:=/etc/helmdesk/demo-desk.toml}"' in wrapper
    assert ': "${HELMDESK_INSTANCE:=demo}"' in wrapper
    assert "Exec=helmdesk --error-dialog\n" in desktop and "Icon=helmdesk\n" in desktop

    if os.geteuid() == 0 and shutil.which("apt-get"):
        _try_install(out)
    else:
        _run_unpacked(tgz, tmp_path)


def _try_install(dist: Path) -> None:
    """apt-get install, run, upgrade, downgrade over a newer schema, remove, purge."""
    r = subprocess.run(["bash", "packaging/try-install.sh", str(dist)], cwd=ROOT,
                       env={**os.environ, "PYTHON": sys.executable}, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.endswith("TRY-INSTALL OK\n"), (
        r.stdout[-3000:] + r.stderr[-3000:])
    out = r.stdout
    assert "version: helmdesk 0.1.0 (commit " in out and "workstation demo-desk)" in out
    assert "upgraded to 0.1.0+1 (helmdesk 0.1.0+1 (commit " in out
    assert "the user's data is unchanged" in out
    assert (f"has schema version {SCHEMA_VERSION + 1}, newer than this Helmdesk's "
            f"({SCHEMA_VERSION}, helmdesk 0.1.0): upgrade Helmdesk to use it (helmdesk 0.1.0+1 "
            f"wrote it); the database was not changed") in out
    assert "removed: the program is gone; /etc/helmdesk/demo-desk.toml and the user's data " \
           "stay" in out
    assert not Path("/opt/helmdesk/helmdesk").exists()


def _run_unpacked(tgz: Path, tmp_path: Path) -> None:
    """The .tar.gz's bundle, with no Python of the build machine on the PATH."""
    with tarfile.open(tgz) as t:
        # the "tar" filter where this Python has it (3.11.4 on; Debian 12 has 3.11.2)
        t.extractall(tmp_path / "unpacked",
                     **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))
    exe = tmp_path / "unpacked" / "helmdesk-demo-desk-0.1.0" / "helmdesk"
    v = subprocess.run([str(exe), "--version"], env=_bare_env(tmp_path), capture_output=True,
                       text=True, timeout=120)
    assert v.returncode == 0, v.stderr
    assert v.stdout.startswith("helmdesk 0.1.0 (commit ") and "workstation demo-desk)" in v.stdout

    # the engine (and its store writer and VaR helper: --run-module) for a few seconds
    h = subprocess.run(["timeout", "15", str(exe), "--headless"], env=_bare_env(tmp_path),
                       capture_output=True, text=True, timeout=120)
    assert h.returncode == 124, h.stdout[-1000:] + h.stderr[-1000:]
    lines = [x for x in h.stdout.splitlines() if "running hb" in x]
    assert lines and "ESZ6 0.00/0.00" not in lines[-1], h.stdout[-1000:]

    shot = tmp_path / "desk.png"
    d = subprocess.run([str(exe), "--exit-after", "8", "--screenshot", str(shot)],
                       env=_bare_env(tmp_path, QT_QPA_PLATFORM="offscreen"),
                       capture_output=True, text=True, timeout=180)
    assert d.returncode == 0, d.stderr[-2000:]
    assert shot.stat().st_size > 20_000
