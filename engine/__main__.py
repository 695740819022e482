"""``python -m engine --profile PATH``: the engine without the ``helmdesk`` launcher."""

import sys

from engine.main import main

sys.exit(main())
