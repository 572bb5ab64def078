"""The power model: a pod's resource requests -> electrical energy at the wall.

    watts = vCPU x (min + utilisation x (max - min)) + GiB x watts_per_gib
    energy_kWh = watts x PUE x hours / 1000

Defaults are the Cloud Carbon Footprint (CCF) coefficients for AWS: 0.74 W (idle) to 3.5 W
(full load) per vCPU averaged over instance families, 0.392 W per GiB of memory (CCF's
0.000392 kWh per GB-hour), PUE 1.135, at CCF's default 50 % utilisation. See
https://www.cloudcarbonfootprint.org/docs/methodology. Requests, not usage, are what a move
shifts, so requests are what we count; the same figure serves placement and accounting.
"""

from __future__ import annotations

from core.config import PowerSettings
from core.model import PodDemand


def pod_watts(demand: PodDemand, power: PowerSettings) -> float:
    """IT power drawn for the pod's requests, before the datacentre overhead (PUE)."""
    per_vcpu = power.min_watts_per_vcpu + power.cpu_utilisation * (
        power.max_watts_per_vcpu - power.min_watts_per_vcpu
    )
    return demand.cpu_cores * per_vcpu + demand.memory_gib * power.watts_per_gib


def pod_energy_kwh(demand: PodDemand, power: PowerSettings, *, hours: float) -> float:
    """Energy at the wall (PUE included) for running the pod for ``hours``."""
    return pod_watts(demand, power) * power.pue * hours / 1000.0


def emissions_grams(energy_kwh: float, carbon_g_per_kwh: float) -> float:
    return energy_kwh * carbon_g_per_kwh
