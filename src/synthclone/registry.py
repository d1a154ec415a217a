"""One generic registry: ``register`` / ``create`` / ``names``.

Every pluggable part of synthclone (generators, prompt strategies, filters, models, regimes,
probes, datasets) lives in a :class:`Registry`. Registries store the callable itself, never a
string to evaluate, and an unknown name fails with a message that lists the valid ones.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Generic, Iterator, List, Optional, TypeVar

from .errors import UserError

T = TypeVar("T", bound=Callable[..., Any])


class Registry(Generic[T]):
    """A named table of factories.

    >>> probes = Registry("probe")
    >>> @probes.register("clean")
    ... def clean_probe(**kw): ...
    >>> probes.names()
    ['clean']
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, T] = {}
        self._help: Dict[str, str] = {}

    def register(self, name: Optional[str] = None, *, help: str = "") -> Callable[[T], T]:
        """Decorator registering a factory under ``name`` (default: the callable's name)."""

        def decorator(fn: T) -> T:
            key = name or fn.__name__
            if key in self._items and self._items[key] is not fn:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._items[key] = fn
            lines = (fn.__doc__ or "").strip().splitlines()
            self._help[key] = help or (lines[0] if lines else "")
            return fn

        return decorator

    def get(self, name: str) -> T:
        """The registered callable, or a :class:`UserError` listing the valid names."""
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(self.names()) or "(none registered)"
            raise UserError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {valid}") from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the factory registered as ``name``."""
        return self.get(name)(*args, **kwargs)

    def names(self) -> List[str]:
        return sorted(self._items)

    def describe(self, name: str) -> str:
        """First line of the registered callable's docstring."""
        self.get(name)
        return self._help.get(name, "")

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
