"""The price-provider protocol and the values it answers with.

A provider fetches every region it is asked for in one round (some APIs answer per region, some
with one catalogue for all): a region it cannot price is an error for that region only, so one bad
region never drops the others. An error that stops the whole round (credentials, rate limit) is
raised as a ProviderError, as the carbon providers do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from core.model import Region
from core.signals.base import ProviderError


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourcePrices:
    """One capacity type's prices in a region: USD per vCPU-hour and per GiB-hour of memory."""

    vcpu_hour_usd: float
    gib_hour_usd: float

    def is_finite_positive(self) -> bool:
        return all(math.isfinite(v) and v > 0 for v in (self.vcpu_hour_usd, self.gib_hour_usd))


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionPrices:
    """What a provider says one region costs; ``spot`` None when it offers no spot price there."""

    on_demand: ResourcePrices
    spot: ResourcePrices | None = None


# Per region (our name): its prices, or why the provider could not price it.
PriceFetch = Mapping[str, RegionPrices | ProviderError]


class PriceProvider(Protocol):
    """Anything that can tell the current list prices of some regions."""

    @property
    def name(self) -> str: ...

    def fetch(self, regions: Sequence[Region]) -> PriceFetch:
        """Each region's prices or its error; raise ProviderError when the whole round fails."""
        ...

    def close(self) -> None: ...
