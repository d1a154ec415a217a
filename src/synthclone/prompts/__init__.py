"""Prompt strategies, one file each."""

from ..registry import Registry

PROMPTS: Registry = Registry("prompt strategy")

__all__ = ["PROMPTS"]
