"""Reading a record store — event journal or load profile — from any declared Modbus layout, with
no code per meter.

Real meters expose stored records as a ring buffer at fixed registers (head and count registers, or
a single counter of entries ever written, say which slots are live) or through a selector window
(write an entry index, read a block, as ABB EQ meters do). The profile says which and where; this
module only follows the declaration, and the entry decoder (``codec.py``) is the only thing that
differs between a journal and a load profile. A store can grow while it is read, so a read is
repeated (a bounded number of times) until the bookkeeping registers are the same before and after it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timezone
from typing import TypeVar

from harness.config.modbus_map import (
    LayoutWord,
    ModbusJournal,
    ModbusLoadProfile,
    RecordStore,
    RegisterTable,
    RingLayout,
    WindowLayout,
)
from harness.devices import codec
from harness.devices.api import DeviceError
from harness.events import JournalEntry
from harness.intervals import IntervalData
from harness.reporting.texts import Msg

T = TypeVar("T")
ReadFn = Callable[[RegisterTable, int, int], list[int]]
WriteFn = Callable[[int, list[int]], None]
Decode = Callable[[Sequence[int]], T]
ATTEMPTS = 3  # a store that changes under every one of these reads is reported, not chased forever


def read_journal(journal: ModbusJournal, read: ReadFn, write: WriteFn, tz: timezone,
                 max_registers: int) -> list[JournalEntry]:
    """All journal entries held, oldest first."""
    return read_records(journal, lambda regs: codec.decode_journal_entry(journal, regs, tz), read, write,
                        max_registers, "journal")


def read_load_profile(profile: ModbusLoadProfile, read: ReadFn, write: WriteFn, tz: timezone,
                      max_registers: int) -> list[IntervalData]:
    """All load-profile records held, oldest first."""
    return read_records(profile, lambda regs: codec.decode_interval_entry(profile, regs, tz), read, write,
                        max_registers, "load profile")


def read_records(store: RecordStore, decode: Decode[T], read: ReadFn, write: WriteFn, max_registers: int,
                 what: str) -> list[T]:
    """All entries ``store`` holds, oldest first, each decoded by ``decode`` (ValueError = invalid)."""
    for _ in range(ATTEMPTS):
        if isinstance(store.layout, RingLayout):
            before, entries = _read_ring(store, decode, read, max_registers, what)
            after = _ring_words(store, read)
        else:
            before = _word(store.table, store.layout.count, read)
            entries = _read_window(store, decode, read, write, before, what)
            after = _word(store.table, store.layout.count, read)
        if before == after:
            return entries
    raise DeviceError(Msg("the {what} changed during each of {ATTEMPTS} reads; no consistent copy could be taken",
                          what=what, ATTEMPTS=ATTEMPTS))


def _word(table: RegisterTable, word: LayoutWord, read: ReadFn) -> int:
    return codec.decode_word(word, read(table, word.address, word.register_count))


def _ring_words(store: RecordStore, read: ReadFn) -> tuple[int, ...]:
    """The ring's bookkeeping registers as read: (head, count), or (written,)."""
    lay = store.layout
    assert isinstance(lay, RingLayout)
    return tuple(_word(store.table, word, read) for word in lay.words().values())


def _bookkeeping(store: RecordStore, words: tuple[int, ...], read: ReadFn, what: str) -> tuple[int, int]:
    """(head, held) of a ring from its bookkeeping ``words``."""
    lay = store.layout
    assert isinstance(lay, RingLayout)
    if lay.written is not None:
        return _from_counter(store, words[0], read)
    head, count = words
    if not (0 <= head < store.capacity and 0 <= count <= store.capacity):
        raise DeviceError(Msg("{what} head {head} / count {count} are outside the declared capacity {capacity}",
                              what=what, head=head, count=count, capacity=store.capacity))
    return head, count


def _from_counter(store: RecordStore, written: int, read: ReadFn) -> tuple[int, int]:
    """A ring whose only bookkeeping is a counter of entries ever written, wrapping at its width: head
    = counter mod capacity; held = min(counter, capacity) — unless the counter has wrapped, which it can
    only tell by the slot it would write next: before the first wrap that slot was never written (all
    registers 0x0000 or all 0xFFFF, as a meter's erased memory reads), after it the slot holds the
    oldest entry and the ring is full."""
    lay = store.layout
    assert isinstance(lay, RingLayout)
    head = written % store.capacity
    if written >= store.capacity:
        return head, store.capacity
    regs = read(store.table, lay.base + head * store.entry_size, store.entry_size)
    never_written = all(r == 0 for r in regs) or all(r == 0xFFFF for r in regs)
    return head, written if never_written else store.capacity


def _decode(decode: Decode[T], regs: Sequence[int], n: int, size: int, what: str, where: str) -> list[T]:
    out = []
    for i in range(n):
        try:
            out.append(decode(regs[i * size:(i + 1) * size]))
        except ValueError as exc:
            raise DeviceError(Msg("{what} entry {i} of {where} holds no valid timestamp ({exc})", what=what, i=i,
                                  where=where, exc=exc)) from None
    return out


def _read_ring(store: RecordStore, decode: Decode[T], read: ReadFn, max_registers: int,
               what: str) -> tuple[tuple[int, ...], list[T]]:
    lay = store.layout
    assert isinstance(lay, RingLayout)
    words = _ring_words(store, read)
    head, count = _bookkeeping(store, words, read, what)
    size, cap = store.entry_size, store.capacity
    per_request = max(1, max_registers // size)
    start = (head - count) % cap
    runs = [(start, min(count, cap - start)), (0, count - min(count, cap - start))]
    entries: list[T] = []
    for first, n in runs:
        done = 0
        while done < n:
            k = min(per_request, n - done)
            slot = first + done
            regs = read(store.table, lay.base + slot * size, k * size)
            entries.extend(_decode(decode, regs, k, size, what, f"slots {slot}..{slot + k - 1}"))
            done += k
    return words, entries


def _read_window(store: RecordStore, decode: Decode[T], read: ReadFn, write: WriteFn, count: int,
                 what: str) -> list[T]:
    lay = store.layout
    assert isinstance(lay, WindowLayout)
    if not 0 <= count <= store.capacity:
        raise DeviceError(Msg("{what} count {count} is outside the declared capacity {capacity}", what=what,
                              count=count, capacity=store.capacity))
    size = store.entry_size
    entries: list[T] = []
    index = 0
    while index < count:
        write(lay.selector.address, codec.encode_word(lay.selector, index))
        regs = read(store.table, lay.block, lay.entries_per_block * size)
        n = min(lay.entries_per_block, count - index)
        entries.extend(_decode(decode, regs, n, size, what, f"the block from entry {index}"))
        index += n
    return entries
