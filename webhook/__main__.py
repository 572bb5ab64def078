"""python -m webhook: the mutating admission webhook (and, later, the scheduler extender)."""

import sys

from webhook.server import main

sys.exit(main())
