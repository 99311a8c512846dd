"""Shared test fixtures."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded torch generator."""
    return torch.Generator().manual_seed(1234)
