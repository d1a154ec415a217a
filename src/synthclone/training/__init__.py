"""Training regimes."""

from ..registry import Registry

REGIMES: Registry = Registry("regime")

__all__ = ["REGIMES"]
