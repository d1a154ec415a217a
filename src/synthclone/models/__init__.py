"""Classifier factory: ``create_model(name, num_classes=..., in_chans=...)``, ``list_models()``.

Every classifier follows one contract (:class:`~synthclone.models.base.Classifier`): it takes pixels
in [0, 1] shaped (N, C, H, W), normalises inside, and returns logits over its label space.
"""

from ..registry import Registry

MODELS: Registry = Registry("model")


def create_model(name: str, **kwargs):
    """Build a registered classifier (``resnet8``, ``resnet20``, ...) with ``kwargs``."""
    return MODELS.create(name, **kwargs)


def list_models():
    return MODELS.names()


from . import resnet  # noqa: E402,F401  (registers the embedded nets)

__all__ = ["MODELS", "create_model", "list_models"]
