"""How every app starts and stops, in the same order: its settings from the environment, its
logging, its configuration file, the first line saying what it may change, and SIGTERM/SIGINT.

Each step that can fail says why and returns None; the app's ``main`` then exits with status 2,
before it has touched a cluster."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Protocol, TypeVar

from core.config import ConfigError, EcoPulseConfiguration
from core.logs import configure_logging
from core.reload import ConfigSource
from core.settings import SettingsError
from core.version import VERSION


class ProcessSettings(Protocol):
    @property
    def log_level(self) -> str: ...

    def redacted(self, environ: Mapping[str, str] | None = None) -> dict[str, object]: ...


Settings = TypeVar("Settings", bound=ProcessSettings)


def read_settings(app: str, from_env: Callable[[], Settings]) -> Settings | None:
    """The app's settings, with logging set up at their level; None after saying what is wrong
    on stderr (there is no logging to say it through yet)."""
    try:
        settings = from_env()
    except SettingsError as error:
        print(f"eco-pulse {app}: {error}", file=sys.stderr)
        return None
    configure_logging(settings.log_level)
    return settings


def open_config(path: Path | None, log: logging.Logger) -> ConfigSource | None:
    """The configuration file, checked; None after logging every problem in it."""
    try:
        return ConfigSource.open(path)
    except ConfigError as error:
        log_config_error(log, error)
        return None


def log_config_error(log: logging.Logger, error: ConfigError) -> None:
    log.error("configuration invalid", extra={"path": error.source, "problems": error.problems})


class ControllerSettings(ProcessSettings, Protocol):
    @property
    def config_path(self) -> Path | None: ...


Controller = TypeVar("Controller", bound=ControllerSettings)


def start_controller(
    log: logging.Logger,
    *,
    app: str,
    title: str = "",
    from_env: Callable[[], Controller],
    dry_run: Callable[[EcoPulseConfiguration], bool],
    dry_run_effect: str,
    live_effect: str,
) -> tuple[Controller, ConfigSource] | None:
    """A controller's settings and configuration, and its first line: whether this process may
    change anything, said before it touches a cluster. None when either is invalid (said why).
    ``app`` names it on stderr, ``title`` (default ``app``) in that first line."""
    settings = read_settings(app, from_env)
    if settings is None:
        return None
    source = open_config(settings.config_path, log)
    if source is None:
        return None
    announce(
        log,
        app=title or app,
        dry_run=dry_run(source.current),
        dry_run_effect=dry_run_effect,
        live_effect=live_effect,
        settings=settings,
    )
    return settings, source


def announce(
    log: logging.Logger,
    *,
    app: str,
    dry_run: bool,
    dry_run_effect: str,
    live_effect: str,
    settings: ProcessSettings,
) -> None:
    log.info(
        f"starting eco-pulse {app} in dry run mode: {dry_run_effect}"
        if dry_run
        else f"starting eco-pulse {app} in LIVE mode: {live_effect}",
        extra={"mode": "dry-run" if dry_run else "live", "version": VERSION, "settings": settings.redacted()},
    )


def stop_on_signals(log: logging.Logger) -> threading.Event:
    """An event set by SIGTERM (the kubelet stopping the pod) or SIGINT, for the main loop to wait on."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop
