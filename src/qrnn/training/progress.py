"""The training progress display: a live status line on a terminal, plain lines otherwise.

On a terminal the status line (epoch, loss, postselection probability, speed, ETA) is redrawn in place at most
ten times a second, and messages (validation reports, checkpoint names) scroll above it. When stdout is a file
or a pipe (a cluster's log) there is no redrawing: messages are printed as they come, and a status line at most
every `plain_interval` seconds.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO


def format_duration(seconds: float) -> str:
    """H:MM:SS (or D days, H:MM:SS)."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


class ProgressDisplay:
    """Progress of the epochs `start_epoch` .. `total_epochs` of one run, shown on `stream`."""

    def __init__(
        self,
        total_epochs: int,
        start_epoch: int,
        stream: TextIO | None = None,
        live: bool | None = None,
        plain_interval: float = 30.0,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        if live is None:
            live = bool(getattr(self.stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"
        self.live = live
        self.total_epochs = total_epochs
        self.start_epoch = start_epoch
        self.plain_interval = plain_interval
        self.started = time.perf_counter()
        self._last_draw = float("-inf")
        self._last_plain = self.started
        self._status = ""

    def rate(self, epoch: int) -> float:
        """Epochs per second since this display started."""
        elapsed = time.perf_counter() - self.started
        done = epoch - self.start_epoch
        return done / elapsed if elapsed > 0 and done > 0 else 0.0

    def status(self, epoch: int, loss: float, min_postselection: float) -> str:
        """The one-line status for `epoch` (the number of epochs done)."""
        rate = self.rate(epoch)
        remaining = (self.total_epochs - epoch) / rate if rate > 0 else float("inf")
        return (
            f"epoch {epoch}/{self.total_epochs}  loss {loss:.4f}  min postsel {min_postselection:.3g}  "
            f"{rate:.1f} epochs/s  ETA {format_duration(remaining)}"
        )

    def update(self, epoch: int, loss: float, min_postselection: float) -> None:
        """Show the state after `epoch` epochs (cheap to call every epoch)."""
        now = time.perf_counter()
        if self.live:
            if now - self._last_draw >= 0.1 or epoch == self.total_epochs:
                self._status = self.status(epoch, loss, min_postselection)
                self.stream.write("\r\033[K" + self._status)
                self.stream.flush()
                self._last_draw = now
        elif now - self._last_plain >= self.plain_interval:
            self.stream.write(self.status(epoch, loss, min_postselection) + "\n")
            self.stream.flush()
            self._last_plain = now

    def message(self, text: str) -> None:
        """Print `text` (may span lines) above the status line."""
        if self.live and self._status:
            self.stream.write("\r\033[K")
        self.stream.write(text.rstrip("\n") + "\n")
        if self.live and self._status:
            self.stream.write(self._status)
        self.stream.flush()
        self._last_plain = time.perf_counter()

    def close(self) -> None:
        """End the status line (the terminal's cursor moves to a fresh line)."""
        if self.live and self._status:
            self.stream.write("\n")
            self.stream.flush()
        self._status = ""
