"""Reading an event journal from any declared Modbus layout — no code per meter.

Real meters expose journals as a ring buffer at fixed registers (head and count registers say
which slots are live) or through a selector window (write an entry index, read a block, as ABB
EQ meters do). The profile says which and where; this module only follows the declaration. A
journal can grow while it is read, so a read is repeated (a bounded number of times) until the
bookkeeping registers are the same before and after it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timezone

from harness.config.modbus_map import JournalWord, ModbusJournal, RegisterTable, RingLayout, WindowLayout
from harness.devices import codec
from harness.devices.api import DeviceError
from harness.events import JournalEntry

ReadFn = Callable[[RegisterTable, int, int], list[int]]
WriteFn = Callable[[int, list[int]], None]
ATTEMPTS = 3  # a journal that changes under every one of these reads is reported, not chased forever


def read_journal(journal: ModbusJournal, read: ReadFn, write: WriteFn, tz: timezone,
                 max_registers: int) -> list[JournalEntry]:
    """All entries held, oldest first."""
    for _ in range(ATTEMPTS):
        if isinstance(journal.layout, RingLayout):
            before, entries = _read_ring(journal, read, tz, max_registers)
            after = _bookkeeping(journal, read)
        else:
            before = _word(journal.table, journal.layout.count, read)
            entries = _read_window(journal, read, write, tz, before)
            after = _word(journal.table, journal.layout.count, read)
        if before == after:
            return entries
    raise DeviceError(f"the journal changed during each of {ATTEMPTS} reads; no consistent copy could be taken")


def _word(table: RegisterTable, word: JournalWord, read: ReadFn) -> int:
    return codec.decode_word(word, read(table, word.address, word.register_count))


def _bookkeeping(journal: ModbusJournal, read: ReadFn) -> tuple[int, int]:
    lay = journal.layout
    assert isinstance(lay, RingLayout)
    head, count = _word(journal.table, lay.head, read), _word(journal.table, lay.count, read)
    if not (0 <= head < journal.capacity and 0 <= count <= journal.capacity):
        raise DeviceError(f"journal head {head} / count {count} are outside the declared capacity "
                          f"{journal.capacity}")
    return head, count


def _decode(journal: ModbusJournal, regs: Sequence[int], n: int, tz: timezone, where: str) -> list[JournalEntry]:
    size = journal.entry.size
    out = []
    for i in range(n):
        try:
            out.append(codec.decode_journal_entry(journal, regs[i * size:(i + 1) * size], tz))
        except ValueError as exc:
            raise DeviceError(f"journal entry {i} of {where} holds no valid timestamp ({exc})") from None
    return out


def _read_ring(journal: ModbusJournal, read: ReadFn, tz: timezone,
               max_registers: int) -> tuple[tuple[int, int], list[JournalEntry]]:
    lay = journal.layout
    assert isinstance(lay, RingLayout)
    head, count = _bookkeeping(journal, read)
    size, cap = journal.entry.size, journal.capacity
    per_request = max(1, max_registers // size)
    start = (head - count) % cap
    runs = [(start, min(count, cap - start)), (0, count - min(count, cap - start))]
    entries: list[JournalEntry] = []
    for first, n in runs:
        done = 0
        while done < n:
            k = min(per_request, n - done)
            slot = first + done
            regs = read(journal.table, lay.base + slot * size, k * size)
            entries.extend(_decode(journal, regs, k, tz, f"slots {slot}..{slot + k - 1}"))
            done += k
    return (head, count), entries


def _read_window(journal: ModbusJournal, read: ReadFn, write: WriteFn, tz: timezone,
                 count: int) -> list[JournalEntry]:
    lay = journal.layout
    assert isinstance(lay, WindowLayout)
    if not 0 <= count <= journal.capacity:
        raise DeviceError(f"journal count {count} is outside the declared capacity {journal.capacity}")
    size = journal.entry.size
    entries: list[JournalEntry] = []
    index = 0
    while index < count:
        write(lay.selector.address, codec.encode_word(lay.selector, index))
        regs = read(journal.table, lay.block, lay.entries_per_block * size)
        n = min(lay.entries_per_block, count - index)
        entries.extend(_decode(journal, regs, n, tz, f"the block from entry {index}"))
        index += n
    return entries
