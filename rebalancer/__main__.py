"""python -m rebalancer: move running pods to a better region when, and only when, moving pays."""

import sys

from rebalancer.main import main

sys.exit(main())
