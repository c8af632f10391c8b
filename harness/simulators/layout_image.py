"""Serving a record store (event journal, load profile) in its profile's register layout.

A simulated device keeps its records oldest first; this module says which registers the declared
layout occupies and renders any of them — the bookkeeping words (head, count, selector), one slot
of a ring, or the window the selector points at. The entries themselves are encoded by the store
(``journal.py``, ``load_profile.py``), so every store is laid out by this one implementation.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.config.record_layout import RecordStore, RingLayout
from harness.simulators.regimage import encode_int

Encode = Callable[[int], list[int]]  # index of a held entry (0 = oldest) -> its registers
BOOKKEEPING = ("head", "count", "selector", "written")  # spans that are one number about the store


def store_spans(store: RecordStore) -> list[tuple[int, int, str, bool]]:
    """(address, registers, name, writable) of the registers the layout occupies; a ring is served
    slot by slot, so a read renders only the entries it asks for."""
    lay, size = store.layout, store.entry_size
    if isinstance(lay, RingLayout):
        return [*((w.address, w.register_count, name, False) for name, w in lay.words().items()),
                *((lay.base + i * size, size, f"slot:{i}", False) for i in range(store.capacity))]
    return [(lay.selector.address, lay.selector.register_count, "selector", True),
            (lay.count.address, lay.count.register_count, "count", False),
            (lay.block, lay.entries_per_block * size, "window", False)]


def render_store(store: RecordStore, name: str, held: int, head: int, selector: int, encode: Encode,
                 written: int = 0) -> list[int]:
    """Registers of one span of ``store_spans``: ``held`` entries, the ring's ``head`` slot (where the
    next entry goes), the window's ``selector``, and ``written`` entries ever written (a ring that keeps
    only that counter shows it at its width, wrapping, and puts entry ``written`` in slot
    ``written mod capacity`` — the device's own formula); empty slots read as zeros."""
    lay, size = store.layout, store.entry_size
    if isinstance(lay, RingLayout) and lay.written is not None:
        head = written % lay.counter_modulus % store.capacity
    if name in BOOKKEEPING:
        word = getattr(lay, name)
        value = {"head": head, "count": held, "selector": selector, "written": written}[name]
        return encode_int(word.type, word.word_order.value, value)
    if name.startswith("slot:"):
        k = (int(name[5:]) - (head - held)) % store.capacity
        return encode(k) if k < held else [0] * size
    assert not isinstance(lay, RingLayout)
    regs: list[int] = []
    for i in range(selector, selector + lay.entries_per_block):
        regs.extend(encode(i) if i < held else [0] * size)
    return regs
