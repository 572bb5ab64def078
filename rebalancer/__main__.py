"""python -m rebalancer: move running pods to a better region when, and only when, moving pays.

``python -m rebalancer simulate ...`` replays a grid trace instead (see rebalancer.simulate);
``python -m rebalancer report ...`` writes avoided CO2 and savings from Prometheus (see rebalancer.report).
"""

import sys

if sys.argv[1:2] == ["simulate"]:
    from rebalancer.simulate.cli import main as simulate

    sys.exit(simulate(sys.argv[2:]))

if sys.argv[1:2] == ["report"]:
    from rebalancer.report.cli import main as report

    sys.exit(report(sys.argv[2:]))

from rebalancer.main import main

sys.exit(main())
