"""The price signal: on-demand and spot prices per region, fetched in the background like carbon.

Providers (static, azure, gcp, aws, opencost) answer one protocol (``base.PriceProvider``); the
refresher (``refresher.PriceRefresher``) is the only caller, on its own schedule; readers get the
quotes in the signal snapshot and never cause a fetch. docs/prices.md describes the sources.
"""
