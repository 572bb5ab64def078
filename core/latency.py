"""A round-trip time between two regions nobody measured, from where they are. Pure.

The configuration's latency matrix falls back to this for pairs that neither the file nor the
bundled inter-zone measurements give.
"""

from __future__ import annotations

import math

EARTH_RADIUS_KM = 6371.0
# Light in fibre covers about 200 km per ms; real paths run about 1.5x the great circle.
FIBRE_KM_PER_MS = 200.0
ROUTE_INFLATION = 1.5
RTT_OVERHEAD_MS = 2.0


def estimated_rtt_ms(source: tuple[float, float], target: tuple[float, float]) -> float:
    """Round-trip estimate from (latitude, longitude) in degrees, for pairs with no measurement."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*source, *target))
    haversine = (
        math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    distance_km = 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, haversine)))
    return round(2 * distance_km * ROUTE_INFLATION / FIBRE_KM_PER_MS + RTT_OVERHEAD_MS, 1)
