"""``python -m engine.venue --profile PATH``: the simulated exchange without the launcher."""

import sys

from engine.venue.main import main

sys.exit(main())
