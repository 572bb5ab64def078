"""Progress of a long step on stderr: a bar on a terminal, a plain line every few percent elsewhere.

CI logs keep every byte written, so a redrawn bar there would be thousands of carriage returns;
a line per ``step_percent`` says the same in a few lines.
"""

from __future__ import annotations

from typing import Protocol, TextIO


class _Bar(Protocol):
    n: float

    def update(self, n: float = 1) -> bool | None: ...

    def close(self) -> None: ...


class Progress:
    """Report ``done`` of ``total`` for one labelled step; call ``close`` when the step ends."""

    def __init__(
        self, label: str, *, unit: str, stream: TextIO, terminal: bool, step_percent: int = 5
    ) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream
        self.terminal = terminal
        self.step_percent = step_percent
        self._next_percent = step_percent
        self._bar: _Bar | None = None
        self._last: tuple[int, int] | None = None

    def __call__(self, done: int, total: int) -> None:
        self._last = (done, total)
        if total <= 0:
            return
        if self.terminal:
            bar = self._terminal_bar(total)
            if bar is not None:
                bar.update(done - bar.n)
                return
        percent = done * 100 // total
        if percent < self._next_percent:
            return
        self._next_percent = (percent // self.step_percent + 1) * self.step_percent
        end = "\r" if self.terminal and percent < 100 else "\n"
        self.stream.write(f"simulate: {self.label} {percent:3d}% ({done:,} of {total:,} {self.unit}){end}")
        self.stream.flush()

    def _terminal_bar(self, total: int) -> _Bar | None:
        if self._bar is None:
            try:
                from tqdm import tqdm  # noqa: PLC0415 - optional (the sim extra)
            except ImportError:
                return None
            self._bar = tqdm(total=total, unit=self.unit, desc=self.label, file=self.stream)
        return self._bar

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            return
        if self._last is not None and self._next_percent <= 100:
            # A step that ended short of a boundary (or of 100 %) still says where it stopped.
            done, total = self._last
            percent = done * 100 // total if total > 0 else 100
            self._next_percent = 0
            self.stream.write(f"simulate: {self.label} {percent:3d}% ({done:,} of {total:,} {self.unit})\n")
            self.stream.flush()
