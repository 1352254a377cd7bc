"""A progress bar for waits and transfers: tqdm's when tqdm is installed, else one line on
stderr redrawn in place (a new line per step when stderr is not a terminal)."""

from __future__ import annotations

import sys
from typing import Any, TextIO


class ProgressBar:
    def __init__(self, label: str, *, unit: str = "", stream: TextIO | None = None) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.shown: tuple[int, int | None] | None = None
        self._bar: Any = None
        if stream is None:
            try:
                from tqdm import tqdm  # optional: a nicer bar when it is there
            except ImportError:
                pass
            else:
                self._bar = tqdm(desc=label, unit=unit or "it", unit_scale=unit == "B")

    def update(self, done: int, total: int | None) -> None:
        if self.shown == (done, total):
            return
        self.shown = (done, total)
        if self._bar is not None:
            if total and self._bar.total != total:
                self._bar.total = total
            self._bar.n = done
            self._bar.refresh()
            return
        line = f"{self.label}: {_amount(done, self.unit)}"
        if total:
            line += f" / {_amount(total, self.unit)} ({min(100, 100 * done // total)} %)"
        terminal = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.stream.write(f"\r{line}\033[K" if terminal else f"{line}\n")
        self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.shown is not None and hasattr(self.stream, "isatty") and self.stream.isatty():
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _amount(value: int, unit: str) -> str:
    if unit != "B":
        return f"{value:,}"
    if value < 1024:
        return f"{value} B"
    size = value / 1024
    for suffix in ("KB", "MB"):
        if size < 1024:
            return f"{size:.1f} {suffix}"
        size /= 1024
    return f"{size:.1f} GB"
