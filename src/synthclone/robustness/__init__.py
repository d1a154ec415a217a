"""Robustness probes, one file each."""

from ..registry import Registry

PROBES: Registry = Registry("probe")

__all__ = ["PROBES"]
