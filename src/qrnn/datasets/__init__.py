"""Datasets, by name: a registry of small classes producing bit-tensor batches (see `base`)."""

from __future__ import annotations

from qrnn.datasets.base import STAGES, Batch, Dataset, dataset_names, get_dataset, lookup, register

__all__ = ["STAGES", "Batch", "Dataset", "dataset_names", "get_dataset", "lookup", "register"]
