"""Declarative register layouts of a device's record stores: the event journal and the load profile.

Meters expose their stored records (journal entries, load-profile intervals) in one of two ways,
whatever the records hold: (a) a ring buffer of fixed slots with head and count registers, or (b)
a selector window (write the index of the first wanted record, read a block, as ABB EQ meters do).
The layouts, the integer and timestamp fields of one entry, and the checks that an entry's fields
fit and a store fits the register space are declared once here, so every store a profile declares
is read (``devices/modbus_journal.py``) and served (``simulators/layout_image.py``) by one
implementation each.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import Field, model_validator

from harness.config.modbus_types import ClockEncoding, DataType, ModbusClock, RegisterTable, Strict, WordOrder

IntType = Literal["u16", "i16", "u32", "i32"]
Span = tuple[RegisterTable, int, int, str]  # (table, address, registers, name)


class LayoutWord(Strict):
    """A register holding a number about a store (head slot, entry count, selector)."""

    address: int = Field(ge=0, le=65535)
    type: Literal["u16", "u32"] = "u16"
    word_order: WordOrder = WordOrder.BIG

    @property
    def register_count(self) -> int:
        return DataType(self.type).register_count


class IntField(Strict):
    """An integer field at ``offset`` registers into one entry."""

    offset: int = Field(ge=0, le=124)
    type: IntType = "u16"
    word_order: WordOrder = WordOrder.BIG

    @property
    def register_count(self) -> int:
        return DataType(self.type).register_count


class TimeField(Strict):
    """An entry's timestamp, in one of the clock encodings (unix, ymdhms, packed4)."""

    offset: int = Field(ge=0, le=124)
    encoding: ClockEncoding
    type: Literal["u32", "u64", "i64"] = Field("u32", description="for encoding unix only")
    word_order: WordOrder = WordOrder.BIG

    @property
    def clock(self) -> ModbusClock:
        """The same encoding as a clock point at the field's offset, so both codecs reuse theirs."""
        return ModbusClock(address=self.offset, encoding=self.encoding, type=self.type, word_order=self.word_order)

    @property
    def register_count(self) -> int:
        return self.clock.register_count


def check_entry_fields(size: int, fields: Iterable[tuple[str, int, int]]) -> None:
    """``(name, offset, registers)`` of an entry's fields: each inside ``size``, none overlapping.
    Raises ValueError (pydantic reports it at the entry's line)."""
    ordered = sorted(fields, key=lambda f: f[1])
    for name, off, count in ordered:
        if off + count > size:
            raise ValueError(f"entry field {name} runs past the entry size {size}")
    for (n1, o1, c1), (n2, o2, _) in itertools.pairwise(ordered):
        if o2 < o1 + c1:
            raise ValueError(f"entry fields {n1} and {n2} overlap")


class RingLayout(Strict):
    """(a) A ring buffer: ``capacity`` slots from ``base``. Its bookkeeping is either ``head`` (the
    slot the next entry goes to) and ``count`` (entries held), or — as many meters keep it — one
    ``written`` counter of entries ever written, u16 or u32, wrapping at its width: head = written
    mod capacity, held = min(written, capacity) until the counter first wraps, the whole ring after."""

    type: Literal["ring"]
    head: LayoutWord | None = None
    count: LayoutWord | None = None
    written: LayoutWord | None = Field(
        None, description="instead of head and count: a counter of entries ever written (wraps at its width)")
    base: int = Field(ge=0, le=65535, description="address of slot 0")

    @model_validator(mode="after")
    def _bookkeeping(self) -> RingLayout:
        if self.written is None and (self.head is None or self.count is None):
            raise ValueError("a ring declares `head` and `count`, or one `written` counter of entries ever written")
        if self.written is not None and (self.head is not None or self.count is not None):
            raise ValueError("a ring with a `written` counter has no `head` or `count` of its own "
                             "(head = written mod capacity, held = min(written, capacity))")
        if self.head is not None and self.count is not None and self.head.address == self.count.address:
            raise ValueError("head and count are one register: a ring whose only bookkeeping is a counter of "
                             "entries ever written declares it as `written: {address, type}` instead")
        return self

    @property
    def counter_modulus(self) -> int:
        """Where the ``written`` counter wraps (65536 for a u16)."""
        assert self.written is not None
        return 1 << (16 * self.written.register_count)

    def words(self) -> dict[str, LayoutWord]:
        """The bookkeeping registers, by name (head and count, or written)."""
        found = {"head": self.head, "count": self.count, "written": self.written}
        return {name: word for name, word in found.items() if word is not None}


class WindowLayout(Strict):
    """(b) A selector window (ABB EQ style): write the index of the first wanted entry (0 = oldest
    held) to ``selector``, then read ``entries_per_block`` entries from ``block``."""

    type: Literal["window"]
    selector: LayoutWord
    count: LayoutWord
    block: int = Field(ge=0, le=65535, description="address of the first entry of the window")
    entries_per_block: int = Field(ge=1, le=125)


Layout = Annotated[RingLayout | WindowLayout, Field(discriminator="type")]


class RecordStore(Strict):
    """What every record store declares besides its entries: table, capacity and layout.

    Subclasses add the entry layout and say how large an entry is (``entry_size``)."""

    table: RegisterTable = RegisterTable.HOLDING
    capacity: int = Field(ge=1, le=65535)
    layout: Layout

    @property
    def entry_size(self) -> int:
        raise NotImplementedError

    def check_fits(self) -> None:
        """A window block is one Modbus read; a ring stays inside the register space."""
        lay = self.layout
        if isinstance(lay, WindowLayout):
            if lay.entries_per_block * self.entry_size > 125:
                raise ValueError("a window block is more than 125 registers (one Modbus read)")
        elif lay.base + self.capacity * self.entry_size > 65536:
            raise ValueError("the ring buffer runs past register 65535")
        elif lay.written is not None and lay.written.type == "u16" and lay.counter_modulus % self.capacity:
            # At the wrap the device's next slot would jump from 65535 mod capacity to 0, and the ring's
            # order with it; a u16 counter wraps within a meter's life (682 days of 15-minute records).
            raise ValueError(f"a u16 `written` counter wraps at 65536, which capacity {self.capacity} does not "
                             "divide: head = written mod capacity would jump at the wrap (a u32 counter never "
                             "wraps in a meter's life)")

    def block_registers(self) -> int:
        """Registers one window read takes (0 for a ring, which is read in any split)."""
        lay = self.layout
        return lay.entries_per_block * self.entry_size if isinstance(lay, WindowLayout) else 0

    def spans(self, what: str) -> list[Span]:
        """Everything the store occupies, named ``<what> head`` and so on for overlap errors."""
        lay = self.layout
        if isinstance(lay, RingLayout):
            return [*((self.table, w.address, w.register_count, f"{what} {name}") for name, w in lay.words().items()),
                    (self.table, lay.base, self.capacity * self.entry_size, f"{what} entries")]
        return [(RegisterTable.HOLDING, lay.selector.address, lay.selector.register_count, f"{what} selector"),
                (self.table, lay.count.address, lay.count.register_count, f"{what} count"),
                (self.table, lay.block, lay.entries_per_block * self.entry_size, f"{what} window")]
