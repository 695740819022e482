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
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]"
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
        say "running the test suite"
        exec "$VENV/bin/python" -m pytest "$@"
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
