"""Thin adapters over the official kubernetes client: watch-fed caches of slim records."""
