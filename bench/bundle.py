"""A packaged desk's cold start: launch → its first frame.

    python -m bench.bundle --exe /opt/helmdesk/helmdesk        # an installed package
    python -m bench.bundle --tar dist/helmdesk-WS-VERSION.tar.gz  # unpacked to a temp dir

Each run starts ``helmdesk desk --attach <nobody> --exit-after 0.001 --screenshot F`` under
``QT_QPA_PLATFORM=offscreen`` (the window is shown, the event loop's first turn grabs it):
the time until F exists is launch → first frame, imports, Qt and the first paint included.
The page cache is dropped before each run when the kernel lets us (root): a cold start; else
the figure is marked warm. Ends with one JSON line: ``bundle_cold_start_s`` (median),
``installed_mb``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from bench._common import Table, emit_json, progress, verdict

TARGET_S = 5.0


def _drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def cold_start(exe: Path, runs: int) -> tuple[list[float], bool]:
    times, cold = [], True
    for k in range(runs):
        with tempfile.TemporaryDirectory(prefix="helmdesk-bench-bundle-") as tmp:
            shot = Path(tmp) / "first-frame.png"
            env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", tmp),
                   "HELMDESK_DATA_DIR": str(Path(tmp) / "data"), "QT_QPA_PLATFORM": "offscreen"}
            cold = _drop_caches() and cold
            t0 = time.monotonic()
            proc = subprocess.Popen([str(exe), "desk", "--attach", f"nobody{os.getpid()}",
                                     "--exit-after", "0.001", "--screenshot", str(shot)],
                                    env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            while not (shot.exists() and shot.stat().st_size):
                if proc.poll() is not None and not shot.exists():
                    raise RuntimeError(f"{exe} exited {proc.returncode} before its first frame: "
                                       f"{proc.stderr.read().decode(errors='replace')[-400:]}")
                if time.monotonic() - t0 > 60:
                    proc.kill()
                    raise RuntimeError(f"{exe}: no first frame in 60 s")
                time.sleep(0.005)
            times.append(time.monotonic() - t0)
            proc.wait(timeout=30)
            progress(f"run {k + 1}: {times[-1]:.2f} s")
    return times, cold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exe", type=Path, help="an installed bundle's helmdesk executable")
    ap.add_argument("--tar", type=Path, help="a bundle's .tar.gz (unpacked for the runs)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if (args.exe is None) == (args.tar is None):
        ap.error("give --exe or --tar")
    with tempfile.TemporaryDirectory(prefix="helmdesk-bench-unpack-") as tmp:
        exe = args.exe
        if args.tar is not None:
            with tarfile.open(args.tar) as t:
                t.extractall(tmp, **({"filter": "tar"} if hasattr(tarfile, "tar_filter")
                                     else {}))  # the filter came in Python 3.11.4
            exe = next(Path(tmp).glob("*/helmdesk"))
        installed = _size_mb(exe.parent)
        times, cold = cold_start(exe, args.runs)
    med = statistics.median(times)
    t = Table(f"packaged desk: launch → first frame ({'cold: page cache dropped' if cold else 'WARM: the page cache could not be dropped'})")
    t.add("median", f"{med:.2f} s", f"<= {TARGET_S:g} s", verdict(med, TARGET_S, higher_is_better=False))
    t.add("runs", ", ".join(f"{x:.2f}" for x in times))
    t.add("installed size", f"{installed:,.0f} MB")
    print(t.render())
    emit_json({"bundle_cold_start_s": round(med, 2), "bundle_cold": cold,
               "installed_mb": round(installed, 1)})


if __name__ == "__main__":
    main()
