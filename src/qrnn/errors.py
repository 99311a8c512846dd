"""Errors the user can fix: the command line prints them as one line on stderr and exits with code 2."""

from __future__ import annotations


class QRNNError(ValueError):
    """Bad input or configuration, reported before any work starts; the message is one actionable line."""

    # The command line's exit code for it.
    exit_code = 2


class RunFault(QRNNError):
    """A fault while the work runs (a full disk): one line like `QRNNError`, exit code 1."""

    exit_code = 1
