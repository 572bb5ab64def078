"""The factory that builds the configured price provider (None for static: nothing to fetch)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx

from core.config import PriceProviderName, PricingSettings
from core.signals.base import Clock, ProviderError, utc_now
from core.signals.http import default_client
from core.signals.prices.azure import azure_from_env
from core.signals.prices.base import PriceProvider
from core.signals.prices.gcp import gcp_from_env
from core.signals.prices.opencost import opencost_from_env


def build_price_provider(
    settings: PricingSettings,
    *,
    environ: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    clock: Clock = utc_now,
) -> PriceProvider | None:
    """The provider ``pricing.provider`` names; ProviderError(CONFIG) when it cannot be built."""
    env = os.environ if environ is None else environ
    if settings.provider is PriceProviderName.STATIC:
        return None
    if settings.provider is PriceProviderName.AWS:
        from core.signals.prices.aws import aws_from_env  # noqa: PLC0415 - botocore is an optional extra

        return aws_from_env(env, settings=settings.aws, clock=clock)
    client = default_client(settings.request_timeout_seconds, transport=transport)
    try:
        if settings.provider is PriceProviderName.AZURE:
            return azure_from_env(
                env,
                client=client,
                base_url=settings.azure.base_url,
                reference_vm=settings.azure.reference_vm,
                regions=settings.azure.regions,
                now=clock,
            )
        if settings.provider is PriceProviderName.GCP:
            return gcp_from_env(
                env,
                client=client,
                base_url=settings.gcp.base_url,
                machine_series=settings.gcp.machine_series,
                regions=settings.gcp.regions,
                now=clock,
            )
        return opencost_from_env(env, client=client, base_url=settings.opencost.prometheus_url, now=clock)
    except ProviderError:
        client.close()
        raise
