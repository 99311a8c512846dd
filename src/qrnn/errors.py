"""Errors the user can fix: the command line prints them as one line on stderr and exits with their exit code (2:
bad input, found before any work; 1: a fault while running)."""

from __future__ import annotations


class QRNNError(ValueError):
    """Bad input or configuration, reported before any work starts; the message is one actionable line."""

    # The command line's exit code for it.
    exit_code = 2


class RunFault(QRNNError):
    """A fault while a run works (non-finite numbers, a shard that died): one line naming what happened and the
    last good checkpoint; exit code 1. Subclasses `QRNNError` so that every place reporting one line (the command
    line, a sweep's failed point) reports it as well."""

    exit_code = 1


class NonFiniteFault(RunFault):
    """A run stopped because a loss, gradient or parameter was not finite after the step of `epoch`: training
    diverged. Sweeps record the epoch, so that studies counting steps to a loss can count the run as one that never
    reached it (as the original's notebooks record a run whose loss turned NaN)."""

    def __init__(self, message: str, epoch: int) -> None:
        super().__init__(message)
        self.epoch = epoch

    def __reduce__(self) -> tuple[type[NonFiniteFault], tuple[str, int]]:
        # Shards report their faults through pickles: keep the epoch, which `args` alone would lose.
        return type(self), (str(self), self.epoch)
