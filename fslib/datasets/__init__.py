"""Data sources: synthetic presets, the embedded real-photo set and local folders."""

from .base import TensorImageDataset

__all__ = ["TensorImageDataset"]
