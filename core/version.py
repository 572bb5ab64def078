"""The package version: one source, pyproject.toml's ``[project] version``, read from the metadata."""

from __future__ import annotations

import importlib.metadata


def package_version() -> str:
    try:
        return importlib.metadata.version("eco-pulse")
    except importlib.metadata.PackageNotFoundError:  # running from a tree that was never installed
        return "0+unknown"


VERSION = package_version()
