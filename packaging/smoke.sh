#!/usr/bin/env bash
# Build the demo workstation's installer and try it as an installer would, on this machine
# (run it as root on a fresh Debian: ../shared/tools/fresh-machine/, or CI's chroot):
# apt-get install the .deb, run helmdesk --version, --headless for a few seconds and the desk
# offscreen with a screenshot, then remove the package and check the user's data is still there.
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
DEB=$(ls dist/helmdesk-demo-desk_*_amd64.deb)
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "./$DEB" >/dev/null
echo "installed: $(dpkg-query -W -f='${Package} ${Version} ${Installed-Size} KB' helmdesk-demo-desk)"
# the installed command, with no Python of the build machine on its PATH
OUT=$(env -i PATH=/usr/bin:/bin HOME="$HOME" helmdesk --version)
echo "$OUT"; [[ $OUT == "helmdesk "*"workstation demo-desk)" ]]
DATA=$(mktemp -d)
set +e
env -i PATH=/usr/bin:/bin HOME="$HOME" HELMDESK_DATA_DIR="$DATA" timeout 12 helmdesk --headless >"$DATA/headless.txt" 2>&1
RC=$?
set -e
tail -3 "$DATA/headless.txt"
[[ $RC == 124 ]] && grep -q "running hb" "$DATA/headless.txt"
env -i PATH=/usr/bin:/bin HOME="$HOME" HELMDESK_DATA_DIR="$DATA" QT_QPA_PLATFORM=offscreen \
    helmdesk --exit-after 10 --screenshot "$DATA/desk.png" 2>&1 | tail -2
[[ -s "$DATA/desk.png" ]]
echo "desk screenshot: $(stat -c %s "$DATA/desk.png") bytes"
DEBIAN_FRONTEND=noninteractive apt-get remove -y -q helmdesk-demo-desk >/dev/null
[[ ! -e /usr/bin/helmdesk && -f "$DATA/engine-demo.db" ]]
echo "removed; the user's data stays: $(ls "$DATA" | tr '\n' ' ')"
echo "PACKAGE SMOKE OK"
