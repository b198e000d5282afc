"""A registry of components chosen by key (estimator families, preprocessing steps)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, Protocol, TypeVar

from automl.errors import UserError


class Keyed(Protocol):
    @property
    def key(self) -> str: ...


T = TypeVar("T", bound=Keyed)


class Registry(Generic[T]):
    def __init__(self, kind: str, items: Iterable[T]) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        for item in items:
            if item.key in self._items:
                raise ValueError(f"duplicate {kind} key {item.key!r}")
            self._items[item.key] = item

    def get(self, key: str, field: str = "") -> T:
        try:
            return self._items[key]
        except KeyError:
            raise UserError(field or self.kind, f"unknown {self.kind} '{key}'",
                            f"Use one of: {', '.join(self.keys())}.") from None

    def add(self, item: T) -> None:
        if item.key in self._items:
            raise ValueError(f"duplicate {self.kind} key {item.key!r}")
        self._items[item.key] = item

    def keys(self) -> list[str]:
        return list(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def __contains__(self, key: object) -> bool:
        return key in self._items
