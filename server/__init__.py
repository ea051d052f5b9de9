"""Wattson: make CUDA and HIP programs use less energy, with measured proof."""

__version__ = "0.1.0"
