"""Exports as the harness reads them, each with a real parser of its standard: CSV per RFC 4180 (Python's csv
module, strict), XLSX with openpyxl, IEC 61968-9 MeterReadings XML with the standard library's XML parser, each
against what the contract (docs/amr-api.yaml) and the standard ask of the file."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime

from harness.reporting.texts import Msg

_QUOTED = re.compile(r'"(?:[^"]|"")*"')
COLUMNS = ("meter_id", "quantity", "value", "unit", "reading_time")  # docs/amr-api.yaml, text/csv and xlsx
METER_READINGS_NS = "http://iec.ch/TC57/2011/MeterReadings#"  # IEC 61968-9:2013 MeterReadings message payload
# IEC 61968-9 Annex C ReadingType codes (18 dotted fields): field 16 the power-of-ten multiplier, field 17 the unit
# of measure (IEC 61970-301 UnitSymbol) — the energy units an AMR export carries.
CIM_UNIT_SYMBOLS = {72: "Wh", 73: "varh", 31: "J"}
CIM_PREFIXES = {0: "", 3: "k", 6: "M", 9: "G"}
# The order of a Reading's elements in the schema's sequence (the ones an export may carry).
READING_SEQUENCE = ("reason", "reportedDateTime", "source", "timeStamp", "value", "ReadingQualities", "ReadingType",
                    "timePeriod")


@dataclass(frozen=True)
class ExportRow:
    """One reading of an export file, in the unit the file states."""

    meter_id: str
    value: float
    unit: str
    reading_time: datetime


def parse_rfc4180(data: bytes) -> tuple[list[dict[str, str]], list[Msg]]:
    """Rows of an RFC 4180 CSV file with a header line, and what in it breaks the RFC (or the contract)."""
    problems: list[Msg] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [Msg("not UTF-8 ({reason} at byte {start})", reason=exc.reason, start=exc.start)]
    unquoted = _QUOTED.sub('""', text)  # line breaks inside a quoted field are data (RFC 4180 §2.6)
    if re.search(r"(?<!\r)\n", unquoted):
        problems.append(Msg("a line ends in LF, not CRLF (RFC 4180 §2.1)"))
    try:
        table = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        return [], [*problems, Msg("not parseable as RFC 4180 ({exc})", exc=exc)]
    if not table:
        return [], [*problems, Msg("empty: no header line")]
    header, body = table[0], table[1:]
    problems += _header_problems(header)
    short = [i for i, row in enumerate(body, 2) if len(row) != len(header)]
    if short:
        problems.append(Msg("line(s) {lines} have a field count other than the header's (RFC 4180 §2.4)",
                            lines=", ".join(map(str, short[:3]))))
    return [dict(zip(header, row, strict=False)) for row in body if len(row) == len(header)], problems


def _header_problems(header: list[str]) -> list[Msg]:
    missing = [c for c in COLUMNS if c not in header]
    return [Msg("header lacks column(s) {columns}", columns=", ".join(missing))] if missing else []


def parse_xlsx(data: bytes) -> tuple[list[dict[str, object]], list[Msg]]:
    """Rows of the first worksheet of an Office Open XML workbook (a header row, then one row per reading), and
    what in it breaks the contract: the value a number cell, the time text with its UTC offset."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError, InvalidFileException … for a broken file
        return [], [Msg("not an XLSX workbook openpyxl can read ({kind}: {exc})", kind=type(exc).__name__,
                        exc=str(exc)[:120])]
    try:
        table = [list(row) for row in book.worksheets[0].iter_rows(values_only=True)] if book.worksheets else []
    finally:
        book.close()
    if not table:
        return [], [Msg("empty: no header row")]
    header = [str(c) if c is not None else "" for c in table[0]]
    problems = _header_problems(header)
    rows = [dict(zip(header, row, strict=False)) for row in table[1:] if any(c is not None for c in row)]
    texts = [i for i, row in enumerate(rows, 2) if "value" in row and not isinstance(row["value"], int | float)]
    if texts:
        problems.append(Msg("row(s) {rows}: value is not a number cell", rows=", ".join(map(str, texts[:3]))))
    return rows, problems


def _local(element: ET.Element) -> tuple[str, str]:
    """(namespace, local name) of an element's tag."""
    namespace, _, name = element.tag[1:].partition("}") if element.tag.startswith("{") else ("", "", element.tag)
    return namespace, name


def _cim_unit(ref: str) -> str | None:
    """The unit a ReadingType code states (multiplier and unit of measure), None for a code the harness cannot
    read as an energy unit."""
    fields = ref.split(".")
    if len(fields) != 18 or not all(f.lstrip("-").isdigit() for f in fields):
        return None
    prefix, symbol = CIM_PREFIXES.get(int(fields[15])), CIM_UNIT_SYMBOLS.get(int(fields[16]))
    return None if prefix is None or symbol is None else prefix + symbol


def parse_meter_readings(data: bytes) -> tuple[list[dict[str, object]], list[Msg]]:
    """Readings of an IEC 61968-9 MeterReadings document: root ``MeterReadings`` in the standard's namespace, one
    ``MeterReading`` per meter (``Meter/mRID`` or ``Meter/Names/name``), ``Readings`` each with ``timeStamp``,
    ``value`` and a ``ReadingType`` reference (18-field code) in the schema's order; and what breaks it."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return [], [Msg("not well-formed XML ({exc})", exc=exc)]
    ns = {"m": METER_READINGS_NS}
    if _local(root) != (METER_READINGS_NS, "MeterReadings"):
        return [], [Msg("the root element is {tag}, not MeterReadings in {ns}", tag=root.tag, ns=METER_READINGS_NS)]
    rows: list[dict[str, object]] = []
    problems: list[Msg] = []
    for n, reading in enumerate(root, 1):
        if _local(reading) != (METER_READINGS_NS, "MeterReading"):
            problems.append(Msg("element {n} of MeterReadings is {tag}, not MeterReading", n=n, tag=reading.tag))
            continue
        meter = (reading.findtext("m:Meter/m:Names/m:name", namespaces=ns)
                 or reading.findtext("m:Meter/m:mRID", namespaces=ns))
        if not meter:
            problems.append(Msg("MeterReading {n} names no Meter (mRID or Names/name)", n=n))
            continue
        for block in reading.findall("m:Readings", ns):
            order = [_local(e)[1] for e in block]
            ranks = [READING_SEQUENCE.index(t) for t in order if t in READING_SEQUENCE]
            if ranks != sorted(ranks):
                problems.append(Msg("{meter}: Readings elements {order} out of the schema's sequence", meter=meter,
                                    order=", ".join(order)))
            kind = block.find("m:ReadingType", ns)
            unit = _cim_unit(kind.get("ref", "")) if kind is not None else None
            if unit is None:
                problems.append(Msg("{meter}: a Readings without a ReadingType ref of an energy unit (18-field code, "
                                    "IEC 61968-9 Annex C): {ref}", meter=meter,
                                    ref=kind.get("ref", "none") if kind is not None else "none"))
                continue
            rows.append({"meter_id": meter, "value": block.findtext("m:value", namespaces=ns), "unit": unit,
                         "reading_time": block.findtext("m:timeStamp", namespaces=ns)})
    return rows, problems


PARSERS = {"csv": parse_rfc4180, "xlsx": parse_xlsx, "iec61968-9": parse_meter_readings}
PARSED_AS = {"csv": Msg("RFC 4180 with the contract's columns"), "xlsx": Msg("XLSX with the contract's columns"),
             "iec61968-9": Msg("IEC 61968-9 MeterReadings")}


def read_export(fmt: str, data: bytes) -> tuple[list[ExportRow], list[Msg]]:
    """The readings of an export file in ``fmt`` and every problem the harness found in it (a row it cannot read is
    a problem, never a silent omission)."""
    rows, problems = PARSERS[fmt](data)
    out: list[ExportRow] = []
    for n, row in enumerate(rows, 1):
        try:
            stamp = datetime.fromisoformat(str(row["reading_time"]))
            if stamp.tzinfo is None:
                raise ValueError(f"reading_time {row['reading_time']} has no UTC offset")
            value = row["value"]
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError(f"value {value!r} is not a number")
            out.append(ExportRow(str(row["meter_id"]), float(value), str(row["unit"]), stamp))
        except (KeyError, ValueError, TypeError) as exc:
            problems.append(Msg("reading {n}: {exc}", n=n, exc=exc))
    return out, problems


def exported_meters(data: bytes, fmt: str = "csv") -> set[str]:
    """The meter ids an export file names (a file the harness cannot parse names none it can trust: empty)."""
    rows, _ = PARSERS[fmt](data)
    return {str(row["meter_id"]) for row in rows if "meter_id" in row}
