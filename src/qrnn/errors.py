"""Errors the user can fix: the command line prints them as one line on stderr and exits with code 2."""

from __future__ import annotations


class QRNNError(ValueError):
    """Bad input or configuration, reported before any work starts; the message is one actionable line."""
