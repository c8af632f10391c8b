"""The catalogue of seeded defects: each breaks one requirement the way real devices do.

Every conformance check lands with a defect here that makes it fail on the right clause; the
harness's own tests prove it (tests/test_defects.py). ``expect`` names the check that must
catch the defect — it is the contract between a simulator and the suites, kept as data.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Defect:
    name: str
    clause: str
    expect: str  # the check id that must FAIL
    description: str


METER_DEFECTS: dict[str, Defect] = {
    d.name: d
    for d in (
        Defect("register_missing", "95", "KZ-95-01",
               "the reactive export total register is not served (exception 02)"),
        Defect("reactive_not_counted", "95", "KZ-95-02",
               "reactive energy registers never advance whatever the load"),
        Defect("wrong_unit", "95", "KZ-95-02",
               "active energy registers count kWh where the profile declares Wh"),
        Defect("counter_glitch", "95", "KZ-95-03",
               "every fifth read returns energy totals a few steps lower (a counter that steps back)"),
        Defect("tariff_total_mismatch", "95", "KZ-95-04",
               "total registers run 0.5 % above the sum of the tariff registers"),
        Defect("tariff_swapped", "95", "KZ-95-05",
               "energy of the T2 and T3 periods lands in each other's registers (mis-programmed register map)"),
        Defect("tariff_stuck", "95", "KZ-95-06",
               "all energy goes to T1 whatever the time-of-day schedule says"),
        Defect("nvm_write_lag", "95", "KZ-95-07",
               "energy is persisted only every 300 s of device time; a power cut loses the rest"),
        Defect("settings_volatile", "95", "KZ-95-08",
               "settings are kept in RAM only and return to factory values after a power cut"),
        Defect("clock_set_ignored", "95", "KZ-95-09",
               "clock writes are acknowledged but do not change the clock"),
        Defect("clock_resets_on_power_loss", "95", "KZ-95-10",
               "the clock restarts from 2000-01-01 00:00 after every power-on (no RTC battery)"),
        Defect("clock_drift", "95", "KZ-95-11",
               "the RTC crystal runs 0.5 % fast (7 minutes a day)"),
    )
}


def parse_defects(spec: str | None, catalogue: dict[str, Defect]) -> set[str]:
    """Comma-separated defect names; an unknown name is an error that lists the known ones."""
    names = {n.strip() for n in (spec or "").split(",") if n.strip()}
    unknown = names - catalogue.keys()
    if unknown:
        raise ValueError(f"unknown defect(s) {', '.join(sorted(unknown))}; known: {', '.join(catalogue)}")
    return names
