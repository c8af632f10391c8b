"""A link fault held for the length of a ``with`` block, on any link injector (the TCP proxy, the serial relay).

Why one helper: every injector's ``fault(kind)`` must refuse a kind it does not know before touching the link,
and must restore the link however the block ends — one piece of code keeps that promise for all of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

Injector = TypeVar("Injector")


@contextlib.contextmanager
def fault_window(injector: Injector, kind: str, known: Sequence[str], what: str = "link fault",
                 **params: Any) -> Iterator[Injector]:
    """Apply ``kind`` (a method of ``injector``), yield the injector, always ``restore()`` it afterwards."""
    if kind not in known:
        raise ValueError(f"unknown {what} {kind!r}; known: {', '.join(known)}")
    getattr(injector, kind)(**params)
    try:
        yield injector
    finally:
        injector.restore()  # type: ignore[attr-defined]
