"""The packaged ``helmdesk`` executable's entry point (PyInstaller runs this script).

``helmdesk ARGS`` is the command line as from a source tree. ``helmdesk --run-module MODULE
ARGS`` runs one of the bundle's modules as ``__main__``: how the frozen launcher starts its
engine, store writer and VaR helper, there being no ``python -m`` in a bundle
(``engine.core.paths.module_command``). numba's cache goes to a per-user directory: the
bundle itself is read-only.
"""

import os
import runpy
import sys

from engine.core.paths import FROZEN_MODULE_FLAG

if getattr(sys, "frozen", False):
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(cache, "helmdesk", "numba"))

if len(sys.argv) > 2 and sys.argv[1] == FROZEN_MODULE_FLAG:
    module = sys.argv[2]
    sys.argv = [sys.argv[0], *sys.argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
else:
    from app.cli import main

    sys.exit(main())
