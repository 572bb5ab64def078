"""What-if replay: Eco-Pulse against carbon-blind and hindsight placement on an hourly grid trace.

``python -m rebalancer simulate --config CONFIG --trace TRACE --workload WORKLOAD --out DIR``
"""
