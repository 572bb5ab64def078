"""python -m simulate: the what-if replays. ``fleet``: a Karmada fleet's deferrable Jobs
(simulate.cli); anything else: one cluster's replay, as ``python -m rebalancer simulate``."""

import sys

arguments = sys.argv[1:]
if arguments[:1] == ["fleet"]:
    from simulate.cli import main

    sys.exit(main(arguments[1:]))

from rebalancer.simulate.cli import main as one_cluster  # noqa: E402

sys.exit(one_cluster(arguments))
