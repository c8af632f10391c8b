"""The golden server's export files, one writer per standard format of docs/amr-api.yaml ``/export``.

CSV per RFC 4180; XLSX (Office Open XML) written with openpyxl; IEC 61968-9 MeterReadings XML in the
namespace of its 2011 message schema: one ``MeterReading`` per meter (``Meter/mRID`` and ``Meter/Names/name``
its id), one ``Readings`` per reading with ``timeStamp``, ``value`` and the CIM ``ReadingType`` of its
quantity and unit (IEC 61968-9 Annex C: an 18-field dotted code whose 16th field is the power-of-ten multiplier
and 17th the unit of measure).
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable

from harness.simulators.amr_server.store import Reading

COLUMNS = ["reading_id", "meter_id", "quantity", "value", "unit", "reading_time", "source"]
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8; header=present",
               "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
               "iec61968-9": "application/xml"}
METER_READINGS_NS = "http://iec.ch/TC57/2011/MeterReadings#"
# unit -> (CIM multiplier, CIM unit of measure): Wh = 72, J = 31, varh = 73 (IEC 61968-9 Annex C / IEC 61970-301)
CIM_UNITS = {"Wh": (0, 72), "kWh": (3, 72), "MWh": (6, 72), "varh": (0, 73), "kvarh": (3, 73), "J": (0, 31),
             "kJ": (3, 31), "MJ": (6, 31), "GJ": (9, 31)}
# quantity -> the leading fields of its ReadingType: macroPeriod.aggregate.measuringPeriod.accumulation
# (1 bulk quantity).flowDirection (1 forward, 19 reverse).commodity (1 electricity, 12 heating fluid).kind (12 energy)
CIM_QUANTITIES = {"active_import_total": "0.0.0.1.1.1.12", "active_export_total": "0.0.0.1.19.1.12",
                  "reactive_import_total": "0.0.0.1.1.1.12", "heat_energy": "0.0.0.1.1.12.12"}


def reading_type(quantity: str, unit: str) -> str:
    multiplier, uom = CIM_UNITS.get(unit, (0, 0))
    head = CIM_QUANTITIES.get(quantity, "0.0.0.1.0.0.0")
    return f"{head}.0.0.0.0.0.0.0.0.{multiplier}.{uom}.0"


def _csv(rows: list[Reading]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180: CRLF line ends, quoted where needed
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([r.id, r.meter_id, r.quantity, repr(r.value), r.unit, r.reading_time, r.source])
    return out.getvalue().encode("utf-8")


def _xlsx(rows: list[Reading]) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("readings")
    sheet.append(COLUMNS)
    for r in rows:  # the value a number cell; the time text with its UTC offset (an Excel date has no zone)
        sheet.append([str(r.id), r.meter_id, r.quantity, r.value, r.unit, r.reading_time, r.source])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _meter_readings(rows: list[Reading]) -> bytes:
    ET.register_namespace("", METER_READINGS_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
        element = ET.SubElement(parent, f"{{{METER_READINGS_NS}}}{tag}")
        element.text = text
        return element

    root = ET.Element(f"{{{METER_READINGS_NS}}}MeterReadings")
    by_meter: dict[str, list[Reading]] = {}
    for r in rows:
        by_meter.setdefault(r.meter_id, []).append(r)
    for meter, readings in by_meter.items():
        reading = sub(root, "MeterReading")
        device = sub(reading, "Meter")
        sub(device, "mRID", meter)
        sub(sub(device, "Names"), "name", meter)
        for r in readings:  # the schema's order: reason, reportedDateTime, source, timeStamp, value, …, ReadingType
            block = sub(reading, "Readings")
            sub(block, "source", r.source)
            sub(block, "timeStamp", r.reading_time)
            sub(block, "value", repr(r.value))
            sub(block, "ReadingType").set("ref", reading_type(r.quantity, r.unit))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


WRITERS: dict[str, Callable[[list[Reading]], bytes]] = {"csv": _csv, "xlsx": _xlsx, "iec61968-9": _meter_readings}


def export_file(fmt: str, rows: Iterable[Reading]) -> bytes:
    return WRITERS[fmt](list(rows))
