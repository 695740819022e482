"""Where Helmdesk keeps its files: ``$HELMDESK_DATA_DIR`` or the XDG data directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["data_dir", "log_dir", "state_dir", "resources_dir", "demo_profile_path",
           "module_command", "FROZEN_MODULE_FLAG"]

#: how a packaged (frozen) ``helmdesk`` runs one of its modules as a process of its own
#: (``python -m MODULE`` has no Python to run it there): ``helmdesk --run-module MODULE …``
FROZEN_MODULE_FLAG = "--run-module"


def data_dir() -> Path:
    env = os.environ.get("HELMDESK_DATA_DIR")
    if env:
        p = Path(env)
    else:
        base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
        p = Path(base) / "helmdesk"
    p.mkdir(parents=True, exist_ok=True, mode=0o700)
    return p


def log_dir() -> Path:
    p = data_dir() / "logs"
    p.mkdir(exist_ok=True, mode=0o700)
    return p


def state_dir(instance: str) -> Path:
    p = data_dir() / "state" / instance
    p.mkdir(parents=True, exist_ok=True, mode=0o700)
    return p


def module_command(module: str, *args: str) -> list[str]:
    """The command line that runs ``module`` as ``__main__`` in a new process: ``python -m
    MODULE ARGS`` from a source tree or an installed wheel, and the bundle's own executable
    with ``--run-module MODULE ARGS`` in a packaged installation."""
    if getattr(sys, "frozen", False):
        return [sys.executable, FROZEN_MODULE_FLAG, module, *args]
    return [sys.executable, "-m", module, *args]


def resources_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "resources"


def demo_profile_path() -> Path:
    return resources_dir() / "profiles" / "demo.toml"
