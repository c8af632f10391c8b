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


def _device_body(clause: str, settings: str, clock_set: str, clock_reset: str, drift: str) -> tuple[Defect, ...]:
    """Defects of the body every simulated Modbus device shares (settings and RTC), with the ids of
    the checks that catch them on a device of the given clause."""
    return (
        Defect("settings_volatile", clause, settings,
               "settings are kept in RAM only and return to factory values after a power cut"),
        Defect("clock_set_ignored", clause, clock_set, "clock writes are acknowledged but do not change the clock"),
        Defect("clock_resets_on_power_loss", clause, clock_reset,
               "the clock restarts from 2000-01-01 00:00 after every power-on (no RTC battery)"),
        Defect("clock_drift", clause, drift, "the RTC crystal runs 0.5 % fast (7 minutes a day)"),
    )


# The journal lives in the shared device body too (simulators/journal.py): every device has these.
JOURNAL_DEFECTS = (
    Defect("journal_time_skew", "97", "KZ-97-01", "journal entries are stamped an hour behind the device clock"),
    Defect("journal_missing_power_events", "97", "KZ-97-02", "power failures and returns are not logged"),
    Defect("journal_volatile", "97", "KZ-97-03",
           "the journal is kept in RAM only and starts empty after every power cut"),
    Defect("journal_sequence_gap", "97", "KZ-97-04", "the sequence counter skips a number after every fifth entry"),
    Defect("journal_stops_when_full", "97", "KZ-97-05",
           "a full journal stops recording although the profile declares overwrite_oldest"),
    Defect("journal_capacity_short", "97", "KZ-97-06",
           "only a quarter of the declared capacity is really kept (the oldest entries go early)"),
    Defect("journal_unreadable", "97", "KZ-97-07",
           "the journal registers answer exception 02: events are recorded but cannot be transmitted"),
)

# The load profile (simulators/load_profile.py) of every simulated electricity meter (cl. 31).
INTERVAL_DEFECTS = (
    Defect("interval_period_mismatch", "31", "KZ-31-01",
           "records are captured every 30 minutes although the profile declares 15"),
    Defect("interval_gap", "31", "KZ-31-02", "every seventh interval record is lost (never stored, never sent)"),
    Defect("interval_misaligned", "31", "KZ-31-02",
           "interval end times are stamped 37 s after the period boundary"),
    Defect("interval_increments_wrong", "31", "KZ-31-03",
           "each increment is cut to whole 100 Wh / varh; the rest of every interval's energy is lost"),
    Defect("interval_power_cut_unflagged", "31", "KZ-31-04",
           "an interval with a power failure is not flagged (nor are the intervals of the outage)"),
    Defect("interval_clock_set_unflagged", "31", "KZ-31-05",
           "an interval in which the clock was set is not flagged clock-changed"),
)

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
        *_device_body("95", "KZ-95-08", "KZ-95-09", "KZ-95-10", "KZ-95-11"),
        *JOURNAL_DEFECTS,
        *INTERVAL_DEFECTS,
    )
}

# The heat meter (cl. 96).
HEAT_DEFECTS: dict[str, Defect] = {
    d.name: d
    for d in (
        Defect("heat_mass_not_recorded", "96", "KZ-96-01",
               "the meter does not record the heat carrier's mass: its register is not served (exception 02)"),
        Defect("heat_counter_glitch", "96", "KZ-96-02",
               "every fifth read returns the energy, volume and mass counters a few steps lower"),
        Defect("heat_energy_inconsistent", "96", "KZ-96-03",
               "the calculator integrates 3 % more energy than its own power register shows (wrong c_p)"),
        Defect("heat_mass_fixed_density", "96", "KZ-96-04",
               "mass is computed as volume × 1000 kg/m³ whatever the flow temperature"),
        Defect("heat_nvm_write_lag", "96", "KZ-96-05",
               "counters are persisted only every 300 s of device time; a power cut loses the rest"),
        *_device_body("96", "KZ-96-06", "KZ-96-07", "KZ-96-08", "KZ-96-09"),
        *JOURNAL_DEFECTS,
    )
}


# The data concentrator's uplink (cl. 83-85): main and reserve channel, link status, the NVM buffer.
# Its embedded meter is the golden meter; these break only the concentrator's own duties.
CONCENTRATOR_DEFECTS: dict[str, Defect] = {
    d.name: d
    for d in (
        Defect("failover_never_switches", "85", "KZ-85-01",
               "the reserve channel is never used: while main is down records only pile up in the buffer"),
        Defect("failover_slow", "85", "KZ-85-01",
               "the switchover to the reserve happens only 3x the declared switchover time after main is lost"),
        Defect("failover_never_returns", "85", "KZ-85-02",
               "once on the reserve the device stays there while the reserve works: main is not probed again"),
        Defect("status_not_reported", "84", "KZ-84-02",
               "the link status always shows main up (no failures) whatever happened to the link"),
        Defect("buffer_in_ram", "83", "KZ-83-02",
               "records awaiting delivery are kept in RAM only: a power cut loses the backlog (all but the last "
               "record, which the meter offers again at power-up)"),
        Defect("buffer_duplicates", "83", "KZ-83-01",
               "back-fill after a link returns re-sends the last records that were already acknowledged"),
        Defect("backfill_out_of_order", "83", "KZ-83-01",
               "back-fill sends the buffered records newest first"),
        Defect("failover_skips_record", "71", "KZ-71-01",
               "on leaving the main channel the next record is dropped as if it had been delivered"),
        Defect("uplink_gives_up", "84", "KZ-84-01",
               "a channel whose link failed three times is never tried again: after a flapping link the "
               "device stays off main for good"),
        Defect("pushed_power_cut_unflagged", "61", "KZ-61-01",
               "the embedded meter does not flag an interval with a power cut, so the pushed record does not either"),
    )
}


def parse_defects(spec: str | None, catalogue: dict[str, Defect]) -> set[str]:
    """Comma-separated defect names; an unknown name is an error that lists the known ones."""
    names = {n.strip() for n in (spec or "").split(",") if n.strip()}
    unknown = names - catalogue.keys()
    if unknown:
        raise ValueError(f"unknown defect(s) {', '.join(sorted(unknown))}; known: {', '.join(catalogue)}")
    return names
