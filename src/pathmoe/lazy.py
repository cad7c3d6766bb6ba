"""Lazy package exports (PEP 562): `from pathmoe.X import name` imports only the submodule owning it.

The Snakefile validates a config on every start and the CLI starts once per job; neither should
pay for torch, lm-eval or matplotlib when it needs one small piece of a package.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` resolving each name in `exports` from `package.<submodule>`."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
