"""Notice when mounted files change, and swap in what they now say.

Kubernetes updates a mounted ConfigMap or Secret by writing a new directory and flipping the
`..data` symlink, so inotify on the file itself misses it; a cheap stat of the resolved path
every few seconds does not. The same mechanism serves the config and the TLS key pair.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from core.config import ConfigError, EcoPulseConfiguration, default_config, load_config
from core.metrics import CONFIG_RELOADS

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[int, int, int] | None, ...]


def fingerprint(paths: Sequence[Path]) -> Fingerprint:
    """(inode, size, mtime) of each path after following symlinks; None where it is missing."""
    prints: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            prints.append(None)
            continue
        prints.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(prints)


class FileWatcher:
    """Calls ``on_change`` when any of the files changes; polled, so tests drive it with ``check()``."""

    def __init__(self, paths: Sequence[Path], on_change: Callable[[], object]) -> None:
        self._paths = tuple(paths)
        self._on_change = on_change
        self._last = fingerprint(self._paths)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """Compare with the last look; run the callback once if anything changed."""
        current = fingerprint(self._paths)
        if current == self._last:
            return False
        self._last = current
        self._on_change()
        return True

    def start(self, *, interval_seconds: float, name: str) -> None:
        def loop() -> None:
            while not self._stop.wait(interval_seconds):
                try:
                    self.check()
                except Exception:  # a watcher must never die: log and look again next time
                    log.exception("file watcher failed", extra={"watcher": name})

        self._thread = threading.Thread(target=loop, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class ConfigSource:
    """The current configuration. Reads are a single attribute load; reloads swap it atomically.

    An invalid new file is logged and counted, and the last good configuration stays in force:
    a bad edit to the ConfigMap must not take the webhook or the rebalancer down. The same holds
    for a file that parses but cannot work (a trace file that is missing, a provider whose
    credentials are not set): each check added with ``add_check`` may refuse it first.
    """

    def __init__(self, path: Path | None, initial: EcoPulseConfiguration) -> None:
        self.path = path
        self._current = initial
        self._listeners: list[Callable[[EcoPulseConfiguration], None]] = []
        self._checks: list[Callable[[EcoPulseConfiguration], Sequence[str]]] = []
        self.last_error: str | None = None
        self._watcher = FileWatcher([path], self.reload) if path is not None else None

    @classmethod
    def from_file(cls, path: Path) -> ConfigSource:
        """Load once (raising ConfigError if the file is bad at start) and watch for changes."""
        return cls(path, load_config(path))

    @classmethod
    def open(cls, path: Path | None) -> ConfigSource:
        """What every app starts from: the file at ``path`` (ConfigError if bad), else the default."""
        return cls.from_file(path) if path is not None else cls(None, default_config())

    @property
    def current(self) -> EcoPulseConfiguration:
        return self._current

    def subscribe(self, listener: Callable[[EcoPulseConfiguration], None]) -> None:
        self._listeners.append(listener)

    def add_check(self, check: Callable[[EcoPulseConfiguration], Sequence[str]]) -> None:
        """``check`` returns what keeps a new configuration from working (nothing: it may apply)."""
        self._checks.append(check)

    def reload(self) -> bool:
        if self.path is None:
            return False
        try:
            new = load_config(self.path)
        except ConfigError as error:
            self.last_error = str(error)
            CONFIG_RELOADS.labels(result="invalid").inc()
            log.error(
                "config reload rejected; keeping the last good configuration",
                extra={"path": str(self.path), "problems": error.problems},
            )
            return False
        if new == self._current:
            self.last_error = None
            return False
        problems = [problem for check in self._checks for problem in check(new)]
        if problems:
            self.last_error = str(ConfigError(problems, source=str(self.path)))
            CONFIG_RELOADS.labels(result="unusable").inc()
            log.error(
                "config reload refused: it cannot work; keeping the last good configuration",
                extra={"path": str(self.path), "problems": problems},
            )
            return False
        self.last_error = None
        self._current = new
        CONFIG_RELOADS.labels(result="applied").inc()
        log.info("config reloaded", extra={"path": str(self.path)})
        for listener in self._listeners:
            try:
                listener(new)
            except Exception:
                log.exception("config listener failed", extra={"path": str(self.path)})
        return True

    def check(self) -> bool:
        return self._watcher.check() if self._watcher is not None else False

    def start_watching(self, *, interval_seconds: float = 2.0) -> None:
        if self._watcher is not None:
            self._watcher.start(interval_seconds=interval_seconds, name="config-watcher")

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
