#!/usr/bin/env bash
# Try a workstation's .deb as its installer would, on this machine: as root, with apt-get.
#
#   bash packaging/try-install.sh DIST_DIR     (the --out of packaging/build.py)
#
# 1. apt-get install it; helmdesk --version, --headless for a few seconds and the desk
#    offscreen with a screenshot (and on Xvfb, where xvfb-run is installed), run as a user with no Python of the build machine on the PATH
#    and the default data directory (~/.local/share/helmdesk of a throwaway HOME);
# 2. upgrade to a newer package (this one, repacked as VERSION+1) and check that nothing in
#    the user's data directory changed (database, desk layout, logs) and the engine runs on it;
# 3. downgrade: the database stamped with a newer schema (as the newer release would have
#    migrated it; $PYTHON writes the stamp), the older package installed again, and its engine
#    must refuse to start with the message that says why, leaving the database unchanged;
# 4. apt-get remove (the user's data and the profile, a conffile, stay), then purge.
# Ends with "TRY-INSTALL OK". The package is purged whatever happens.
set -euo pipefail
DIST=$(cd "${1:?usage: try-install.sh DIST_DIR}" && pwd)
PYTHON=${PYTHON:-python3}
DEB=$(ls "$DIST"/helmdesk-*_amd64.deb | head -1)
PKG=$(dpkg-deb -f "$DEB" Package)
VER=$(dpkg-deb -f "$DEB" Version)
PROFILE=$(dpkg-deb -c "$DEB" | grep -o '/etc/helmdesk/[^ ]*\.toml$' | head -1)
WS=$(basename "$PROFILE" .toml)
NEWVER="$VER+1"
export DEBIAN_FRONTEND=noninteractive
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q "ok installed"; then
    echo "try-install.sh: $PKG is installed on this machine already; not touching it" >&2
    exit 2
fi
WORK=$(mktemp -d /tmp/helmdesk-try-install.XXXXXX)
cleanup() {
    apt-get purge -y -q "$PKG" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/home"
DATA="$WORK/home/.local/share/helmdesk"
# a user's session: the system's PATH only, a HOME of its own, nothing else of ours
as_user() { env -i PATH=/usr/bin:/bin HOME="$WORK/home" "$@"; }
fail() { echo "try-install.sh: $*" >&2; exit 1; }
data_sums() { (cd "$DATA" && find . -type f ! -path './state/*' | sort | xargs sha256sum); }
installed_version() { dpkg-query -W -f='${Version}' "$PKG"; }
headless() {  # the engine until it has run $1 status lines with prices (a cold numba cache
    # compiles first: up to 4 minutes), then SIGTERM: it must stop cleanly
    # a simple command, not as_user: $! must be helmdesk itself (env and the wrapper exec it)
    env -i PATH=/usr/bin:/bin HOME="$WORK/home" helmdesk --headless >"$WORK/headless.txt" 2>&1 &
    local pid=$! deadline=$((SECONDS + 240)) rc=0
    until [[ $(grep -c "running hb .*[1-9][0-9]*\.[0-9]*/" "$WORK/headless.txt") -ge $1 ]]; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS > deadline)); then
            kill "$pid" 2>/dev/null || true
            tail -5 "$WORK/headless.txt" >&2
            fail "helmdesk --headless showed no prices within 240 s"
        fi
        sleep 0.5
    done
    kill -TERM "$pid"
    wait "$pid" || rc=$?
    [[ $rc == 0 || $rc == 143 ]] \
        || { tail -5 "$WORK/headless.txt" >&2; fail "--headless exited with $rc"; }
    echo "headless: $(grep "running hb" "$WORK/headless.txt" | tail -1 | tr -d '\r')"
}

# -- 1. install and run --------------------------------------------------------------------
apt-get install -y -q "$DEB" >/dev/null
echo "installed: $PKG $(installed_version), $(dpkg-query -W -f='${Installed-Size}' "$PKG") KB"
OUT=$(as_user helmdesk --version)
echo "version: $OUT"
[[ $OUT == "helmdesk $VER "*"workstation $WS)" ]] || fail "--version said: $OUT"
# keyring:NAME secrets: the bundle carries the keyring package and its command
as_user helmdesk --run-module keyring --list-backends >"$WORK/keyring.txt" 2>&1 \
    || { cat "$WORK/keyring.txt" >&2; fail "helmdesk --run-module keyring failed"; }
echo "keyring backends: $(tr '\n' ' ' <"$WORK/keyring.txt")"
headless 3
as_user QT_QPA_PLATFORM=offscreen helmdesk --exit-after 10 --screenshot "$WORK/desk.png" \
    >"$WORK/desk.txt" 2>&1 || { tail -5 "$WORK/desk.txt" >&2; fail "the desk failed"; }
[[ -s "$WORK/desk.png" ]] || fail "the desk saved no screenshot"
echo "desk screenshot: $(stat -c %s "$WORK/desk.png") bytes"
if command -v xvfb-run >/dev/null; then  # on a display: Qt's xcb platform and its libraries
    as_user xvfb-run -a -s "-screen 0 1680x1050x24" helmdesk --exit-after 10 \
        --screenshot "$WORK/desk-xcb.png" >"$WORK/desk-xcb.txt" 2>&1 \
        || { tail -5 "$WORK/desk-xcb.txt" >&2; fail "the desk failed on a display (Xvfb)"; }
    [[ -s "$WORK/desk-xcb.png" ]] || fail "the desk on a display saved no screenshot"
    echo "desk on a display (Xvfb, xcb): $(stat -c %s "$WORK/desk-xcb.png") bytes"
fi
DB=$(ls "$DATA"/engine-*.db | head -1)
[[ -f "$DATA/desk/$WS.ini" && -n "$(ls "$DATA"/logs/*.log)" ]] \
    || fail "expected a database, a desk layout and logs in $DATA: $(ls -R "$DATA")"
echo "user data: $(cd "$DATA" && find . -type f ! -path './state/*' | sort | tr '\n' ' ')"
BEFORE=$(data_sums)

# -- 2. upgrade ----------------------------------------------------------------------------
dpkg-deb -R "$DEB" "$WORK/newer"
sed -i "s/^Version: .*/Version: $NEWVER/" "$WORK/newer/DEBIAN/control"
STAMP=$(find "$WORK/newer/opt/helmdesk" -name build.json -path '*resources*' | head -1)
sed -i "s/\"version\": \"$VER\"/\"version\": \"$NEWVER\"/" "$STAMP"
dpkg-deb --root-owner-group -Znone -b "$WORK/newer" "$WORK/${PKG}_${NEWVER}_amd64.deb" >/dev/null
apt-get install -y -q "$WORK/${PKG}_${NEWVER}_amd64.deb" >/dev/null
[[ $(installed_version) == "$NEWVER" ]] || fail "upgrade: $(installed_version) is installed"
OUT=$(as_user helmdesk --version)
[[ $OUT == "helmdesk $NEWVER "* ]] || fail "after the upgrade --version said: $OUT"
[[ $(data_sums) == "$BEFORE" ]] || fail "the upgrade changed the user's data"
echo "upgraded to $NEWVER ($OUT): the user's data is unchanged"
headless 3
echo "the upgraded engine ran on the kept database"

# -- 3. downgrade over a newer schema ------------------------------------------------------
"$PYTHON" - "$DB" "$NEWVER" <<'EOF'
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1])
v = c.execute("SELECT max(version) FROM schema_version").fetchone()[0]
c.execute("INSERT INTO schema_version (version, applied_ns, by) VALUES (?, ?, ?)",
          (v + 1, time.time_ns(), f"helmdesk {sys.argv[2]}"))
c.commit()
c.close()
print(f"database schema stamped {v} -> {v + 1}, as helmdesk {sys.argv[2]} would migrate it")
EOF
STAMPED=$(sha256sum "$DB")
apt-get install -y -q --allow-downgrades "$DEB" >/dev/null
[[ $(installed_version) == "$VER" ]] || fail "downgrade: $(installed_version) is installed"
set +e
as_user timeout 60 helmdesk --headless >"$WORK/refused.txt" 2>&1
RC=$?
set -e
[[ $RC != 0 && $RC != 124 ]] || fail "the older engine did not refuse the newer database (rc $RC)"
grep -q "newer than this Helmdesk's .*upgrade Helmdesk to use it (helmdesk $NEWVER wrote it)" \
    "$WORK/refused.txt" || { cat "$WORK/refused.txt" >&2; fail "no clear refusal"; }
[[ $(sha256sum "$DB") == "$STAMPED" ]] || fail "the refused database was changed"
echo "downgraded to $VER: refused (rc $RC): $(grep -m1 -o 'cannot open the database: .*' \
    "$WORK/refused.txt")"

# -- 4. remove, purge ----------------------------------------------------------------------
apt-get remove -y -q "$PKG" >/dev/null
[[ ! -e /usr/bin/helmdesk && ! -e /opt/helmdesk/helmdesk ]] || fail "remove left the program"
[[ -f "$PROFILE" ]] || fail "remove took the profile (a conffile: only purge does)"
[[ -f "$DB" && -f "$DATA/desk/$WS.ini" ]] || fail "remove took the user's data"
echo "removed: the program is gone; $PROFILE and the user's data stay"
apt-get purge -y -q "$PKG" >/dev/null
[[ ! -e "$PROFILE" && -f "$DB" ]] || fail "purge: profile or user data wrong"
echo "purged: $PROFILE is gone; the user's data stays"
echo "TRY-INSTALL OK"
