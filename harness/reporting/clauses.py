"""The clauses of the Rules the harness knows: chapter, the Russian wording and an English gist.

The Russian text is authoritative and reports quote it. Chapters 9-15 are the requirements on
equipment; the full matrix of every clause is the certificate's business (issue 7), this
catalogue grows with the suites.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Clause:
    number: str
    chapter: int
    gist: str
    text_ru: str = ""


_CHAPTERS = [(9, 49, 51), (10, 52, 57), (11, 58, 62), (12, 63, 72), (13, 73, 79), (14, 80, 86), (15, 87, 97)]

CHAPTER_TITLES = {
    9: "Requirements for ICI objects of fuel and energy companies",
    10: "Requirements for informatisation objects of heat and power",
    11: "Requirements for AMR hardware-software complexes",
    12: "Requirements for process control systems (ASUTP)",
    13: "Requirements for AMR server equipment and operating system",
    14: "Requirements for data transfer in smart metering systems",
    15: "Requirements for measuring instruments and metering equipment",
}

CLAUSES: dict[str, Clause] = {
    "95": Clause(
        "95", 15,
        "electricity meter: non-volatile memory holding main parameters with date and time; records active "
        "and reactive energy, import and export, total and per tariff",
        "Приборы учета электрической энергии имеют энергонезависимую память, обеспечивающую хранение "
        "основных параметров с фиксацией даты и времени, а также обеспечивают запись и сохранение в памяти "
        "значений потребленной активной и реактивной электроэнергии в прямом и обратном направлении, как "
        "суммарно, так и по каждому тарифу.",
    ),
    # The Russian wording of cl. 96 is to be quoted from the Rules themselves (not paraphrased).
    "96": Clause(
        "96", 15,
        "heat meter: non-volatile memory holding main parameters with date and time; records thermal "
        "energy, thermal power, volume and mass of the heat carrier",
    ),
    "97": Clause("97", 15, "meters have built-in event journals that record, register, store and transmit events"),
}


def chapter_of(clause: str) -> int | None:
    try:
        n = int(clause.split(".")[0])
    except ValueError:
        return None
    return next((ch for ch, lo, hi in _CHAPTERS if lo <= n <= hi), None)


def clause_of_check(check_id: str) -> str:
    """``KZ-95-03`` -> ``95``."""
    parts = check_id.split("-")
    if len(parts) != 3 or parts[0] != "KZ":
        raise ValueError(f"check id {check_id!r} is not of the form KZ-<clause>-<nn>")
    return parts[1]
