"""Filters over generated images, registered in :data:`FILTERS`; each returns a keep-mask and scores.

A filter works in two steps so that a sharded, resumable store can use it (see
:mod:`synthclone.data.store`): ``score(images, labels, classes)`` runs per shard, image by image, and
returns manifest columns; ``select(manifest, labels, num_classes, candidates)`` takes the decisions
that need a whole class (quotas, duplicates) and returns a :class:`FilterResult`. Calling a filter on
an in-memory batch does both: ``FILTERS.create("clip")(images, labels, classes) -> FilterResult``.
"""

from ..registry import Registry
from .base import FilterResult, ImageFilter

FILTERS: Registry = Registry("filter")


def create_filter(name: str, **options) -> ImageFilter:
    """Build the filter registered as ``name`` with its options (e.g. ``quota=100``)."""
    return FILTERS.create(name, **options)


from . import clip, dedup  # noqa: E402,F401  (register the filters)

__all__ = ["FILTERS", "FilterResult", "ImageFilter", "create_filter"]
