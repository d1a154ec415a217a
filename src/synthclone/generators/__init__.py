"""Text-to-image backends."""

from ..registry import Registry

GENERATORS: Registry = Registry("generator")

__all__ = ["GENERATORS"]
