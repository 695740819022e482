#!/usr/bin/env bash
# Helmdesk's front door: set everything up, then run the demo or the tests.
#
#   bash packaging/dev.sh demo [helmdesk options]   set up, then start the demo engine and desk
#   bash packaging/dev.sh test [pytest options]     set up, then run the whole test suite
#   bash packaging/dev.sh setup                     set up only
#
# Set-up is idempotent and quick when nothing changed: Debian packages Qt needs (installed with
# apt-get when missing: as root, or through sudo), a virtualenv in .venv (HELMDESK_VENV to
# move it) with Helmdesk installed editable with its test extras.
#
# `test` also starts a throwaway PostgreSQL (Debian's postgresql package, installed when
# missing) for the store's PostgreSQL cases: a cluster in a temporary directory, listening on
# 127.0.0.1 only at a free port, run by the `postgres` system user when we are root (postgres
# refuses to run as root), stopped and removed when the tests end. Its URL is exported as
# HELMDESK_TEST_PG_URL. Give HELMDESK_TEST_PG_URL yourself to use another server (its user must
# be allowed to create databases), or HELMDESK_TEST_PG=0 to skip those cases (not in CI).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${HELMDESK_VENV:-$ROOT/.venv}
MODE=${1:-demo}
[[ $# -gt 0 ]] && shift

say() { printf '\033[1m[helmdesk]\033[0m %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# Qt's libraries, needed even offscreen (PLATFORM-NOTES.md), then those of a real X11 window.
QT_LIBS=(libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0)
WINDOW_LIBS=(libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxkbcommon-x11-0
             libxcb-randr0 libxcb-render-util0 libxcb-image0 libxcb-xinerama0 libx11-xcb1
             xvfb xauth)

missing_debs() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

install_debs() {
    local -a want
    mapfile -t want < <(missing_debs "$@")
    [[ ${#want[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null || die "missing system libraries ${want[*]} and no apt-get to install them; install them with your package manager"
    local sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "missing system libraries: ${want[*]}. As root run: apt-get install -y --no-install-recommends ${want[*]}"
        sudo="sudo"
    fi
    say "installing system libraries: ${want[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
}

# -- a throwaway PostgreSQL for the tests -----------------------------------------------------------
PG_DIR=""
PG_RUN=()

pg_bin_dir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x $d/initdb && -x $d/pg_ctl ]] && { echo "$d"; return 0; }
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"; return 0
    fi
    return 1
}

stop_pg() {
    [[ -n $PG_DIR ]] || return 0
    "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    PG_DIR=""
}

pg_failed() {
    if [[ ${CI:-} == true ]]; then
        die "PostgreSQL for the tests: $* (CI runs the PostgreSQL cases: they may not skip)"
    fi
    say "PostgreSQL for the tests: $*; its cases will skip"
}

start_pg() {
    if [[ -n ${HELMDESK_TEST_PG_URL:-} ]]; then
        say "PostgreSQL for the tests: the server HELMDESK_TEST_PG_URL names"
        return 0
    fi
    if [[ ${HELMDESK_TEST_PG:-1} == 0 && ${CI:-} != true ]]; then
        say "HELMDESK_TEST_PG=0: the PostgreSQL cases will skip"
        return 0
    fi
    if ! PG_BIN=$(pg_bin_dir); then
        command -v dpkg-query >/dev/null || { pg_failed "no initdb/pg_ctl and no apt-get to install them"; return 0; }
        install_debs postgresql
        PG_BIN=$(pg_bin_dir) || { pg_failed "the postgresql package has no initdb/pg_ctl"; return 0; }
    fi
    PG_RUN=()
    if [[ $(id -u) -eq 0 ]]; then  # postgres refuses to run as root: its own system user runs it
        id -u postgres >/dev/null 2>&1 || { pg_failed "we are root and there is no 'postgres' user to run it"; return 0; }
        PG_RUN=(runuser -u postgres --)
    fi
    PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/helmdesk-pg.XXXXXX")
    trap stop_pg EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    [[ ${#PG_RUN[@]} -eq 0 ]] || chown postgres: "$PG_DIR"
    if ! "${PG_RUN[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U helmdesk -A trust -E UTF8 \
            --locale=C --no-sync >"$PG_DIR/initdb.log" 2>&1; then
        pg_failed "initdb failed: $(tail -n 3 "$PG_DIR/initdb.log")"; return 0
    fi
    local port try
    for try in 1 2 3; do  # a free port now may be taken before postgres binds it: try again
        port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        if "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
                -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
                start >/dev/null 2>&1; then
            export HELMDESK_TEST_PG_URL="postgresql+psycopg://helmdesk@127.0.0.1:$port/postgres"
            say "PostgreSQL for the tests: $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (stopped at exit)"
            return 0
        fi
    done
    pg_failed "the server did not start: $(tail -n 3 "$PG_DIR/server.log" 2>/dev/null)"
}

pick_python() {
    local c
    for c in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [[ -n $c ]] && command -v "$c" >/dev/null || continue
        if "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$c"; return 0
        fi
    done
    die "Helmdesk needs Python 3.11 or newer (python3 here is $(python3 --version 2>&1 || echo missing))"
}

setup() {
    local py debs=("${QT_LIBS[@]}")
    [[ $MODE == demo ]] && debs+=("${WINDOW_LIBS[@]}")
    py=$(pick_python)
    # the installer test's PyInstaller reads libraries with objdump and bundles libpython
    [[ $MODE == test ]] && debs+=(binutils "libpython$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')")
    if ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then
        debs+=("python3-venv")
    fi
    if command -v dpkg-query >/dev/null; then
        install_debs "${debs[@]}"
    fi
    if [[ ! -x $VENV/bin/python ]]; then
        say "creating virtualenv $VENV"
        "$py" -m venv "$VENV" || die "could not create a virtualenv with $py (Debian: apt-get install python3-venv)"
    fi
    local stamp="$VENV/.helmdesk-installed" want
    want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
    if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
        say "installing Helmdesk and its dependencies into $VENV (first time: a few minutes)"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test,package]"
        echo "$want" > "$stamp"
    fi
}

case $MODE in
    setup)
        setup
        say "ready: $VENV/bin/helmdesk"
        ;;
    test)
        setup
        export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen} QT_API=pyside6
        start_pg || true
        say "running the test suite"
        rc=0
        "$VENV/bin/python" -m pytest "$@" || rc=$?
        exit $rc  # the EXIT trap stops PostgreSQL
        ;;
    demo)
        setup
        export QT_API=pyside6
        if [[ -z ${DISPLAY:-}${WAYLAND_DISPLAY:-} && -z ${QT_QPA_PLATFORM:-} ]]; then
            # No screen: say so, and show the engine running instead of failing.
            "$VENV/bin/helmdesk" "$@" || true
            say "no display here: running the demo engine headless instead (Ctrl-C to stop)"
            exec "$VENV/bin/helmdesk" --headless "$@"
        fi
        exec "$VENV/bin/helmdesk" "$@"
        ;;
    *)
        die "unknown mode '$MODE' (use: demo, test or setup)"
        ;;
esac
