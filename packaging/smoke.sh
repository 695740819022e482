#!/usr/bin/env bash
# Build the demo workstation's installer and try it as an installer would, on this machine
# (as root, on a throwaway Debian 12 machine or chroot): set up the build's tools, run
# packaging/build.py, check SHA256SUMS, then packaging/try-install.sh: install, run, upgrade,
# downgrade over a newer schema, remove.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash packaging/dev.sh setup
# PyInstaller reads libraries with objdump and bundles the Python library
PYV=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
DEBIAN_FRONTEND=noninteractive apt-get install -y -q binutils "libpython$PYV" >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[package]"
rm -rf dist
.venv/bin/python packaging/build.py --profile resources/profiles/demo.toml --out dist
(cd dist && sha256sum -c SHA256SUMS)
PYTHON=.venv/bin/python bash packaging/try-install.sh dist
echo "PACKAGE SMOKE OK"
