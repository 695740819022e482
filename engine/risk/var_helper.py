"""``python -m engine.risk.var_helper``: the VaR helper process (``engine.risk.var``)."""

import sys

from engine.risk.var import helper_main

sys.exit(helper_main(sys.argv[1:]))
