"""Module ``__getattr__`` and ``__dir__`` that import a package's API names on first use.

Invariants
----------
- A name is imported from its module on first access and bound in the package's namespace, so
  later lookups never come here, and it is the module's own object.
- A name outside the table is an :class:`AttributeError`, as for any module.
- Only :mod:`importlib` is imported here: using this costs the package nothing at import.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_names(
    namespace: dict[str, Any], modules: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the package whose ``globals()`` is ``namespace``.

    Parameters
    ----------
    namespace
        The package's ``globals()`` (its ``__name__`` and ``__all__`` are read from it).
    modules
        The module of each lazily bound name: absolute, or relative to the package (``.name``).
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> object:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *namespace["__all__"]})

    return __getattr__, __dir__
