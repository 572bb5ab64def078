"""python -m report: avoided CO2 and savings per namespace and region, from Prometheus (see report.cli)."""

import sys

from report.cli import main

sys.exit(main())
