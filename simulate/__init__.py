"""What-if replays above the apps: ``simulate`` may import core and the apps' pure planners
(rebalancer's one-cluster replay, fleet mode's member choice); nothing imports it
(docs/architecture.md). ``python -m simulate fleet``: a Karmada fleet's deferrable Jobs."""
