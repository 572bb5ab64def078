"""python -m eco_pulse: the same as the ``eco-pulse`` console script."""

import sys

from eco_pulse.cli import main

sys.exit(main())
