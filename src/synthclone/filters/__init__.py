"""Filters over generated images; each returns a keep-mask and scores."""

from ..registry import Registry

FILTERS: Registry = Registry("filter")

__all__ = ["FILTERS"]
