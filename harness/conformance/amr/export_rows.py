"""Exports as the harness reads them: CSV parsed per RFC 4180 with Python's csv module (strict), against the
columns the contract (docs/amr-api.yaml) names."""

from __future__ import annotations

import csv
import io
import re

from harness.reporting.texts import Msg

_QUOTED = re.compile(r'"(?:[^"]|"")*"')
COLUMNS = ("meter_id", "quantity", "value", "unit", "reading_time")  # docs/amr-api.yaml, text/csv


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
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        problems.append(Msg("header lacks column(s) {columns}", columns=", ".join(missing)))
    short = [i for i, row in enumerate(body, 2) if len(row) != len(header)]
    if short:
        problems.append(Msg("line(s) {lines} have a field count other than the header's (RFC 4180 §2.4)",
                            lines=", ".join(map(str, short[:3]))))
    return [dict(zip(header, row, strict=False)) for row in body if len(row) == len(header)], problems


def exported_meters(data: bytes) -> set[str]:
    """The meter ids an export file names (a file the harness cannot parse names none it can trust: empty)."""
    rows, _ = parse_rfc4180(data)
    return {row["meter_id"] for row in rows if "meter_id" in row}
