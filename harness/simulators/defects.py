"""The catalogue of seeded defects: each breaks one requirement the way real devices do.

Every conformance check lands with a defect here that makes it fail on the right clause; the
harness's own tests prove it (tests/test_certify.py and each suite's tests/test_*.py run every defect and
look for its check's FAIL). ``expect`` names the check that must catch the defect — it is the contract
between a simulator and the suites, kept as data.
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
        Defect("rtc_stops_when_off", clause, clock_reset,
               "the clock stands still while the power is off and runs on from there (no RTC battery, nothing "
               "reset): it loses every outage"),
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

# A device with two interfaces the peer switches between (profile `interfaces`; simulators/channels.py).
CHANNEL_DEFECTS = (
    Defect("reserve_dies_with_main", "85", "KZ-85-03",
           "while the main interface is down the reserve answers every request with exception 04"),
    Defect("main_stays_down", "85", "KZ-85-04",
           "once the main interface has gone down it answers only exception 04 until the next power cycle"),
    Defect("link_status_stuck", "84", "KZ-84-03", "the link-status register shows every interface up, always"),
    Defect("channel_events_not_logged", "84", "KZ-84-04", "interface down and up are not logged in the journal"),
)

# Access control (cl. 94, 78): the shared body's write protection (simulators/write_guard.py) and tamper inputs
# (simulators/journal.py), and the electricity meter's energy registers (simulators/meter.py).
ACCESS_DEFECTS = (
    Defect("meter_energy_writable", "94", "KZ-94-01",
           "a write of a whole energy register is accepted and becomes its value (the meter's count changes)"),
    Defect("meter_clock_unprotected", "94", "KZ-94-02",
           "clock and settings writes are accepted without the unlock (the declared write protection is not "
           "enforced)"),
    Defect("readonly_clock_writable", "94", "KZ-94-02",
           "a clock the profile declares read-only (clock.writable: false) takes any write: anyone can set it"),
    Defect("tamper_not_logged", "94", "KZ-94-03",
           "tamper inputs (cover, magnetic field) are sensed but not logged in the journal"),
)
# What of them every simulated device has (the heat meter's counters are input registers: nothing to write).
ACCESS_BODY_DEFECTS = tuple(d for d in ACCESS_DEFECTS if d.name != "meter_energy_writable")

# Availability (cl. 67, 73): the shared Modbus body (simulators/modbus_device.py `action`), catalogued for the meter.
AVAILABILITY_DEFECTS = (
    Defect("intermittent_unavailable", "67", "KZ-67-01",
           "about 3 % of requests get no answer at all (seeded): the client times out"),
    Defect("slow_link_recovery", "73", "KZ-73-01",
           "after 1 s without a request (a link fault) the network module restarts: nothing is answered for 8 s"),
)

# The wire level of every simulated Modbus device (simulators/wire_faults.py): protocol conformance (cl. 68)
# and communication robustness (cl. 49, IEC 62443-3-3 SR 3.5 input validation, SR 7.1 DoS protection).
WIRE_DEFECTS = (
    Defect("write_multiple_single_refused", "68", "KZ-68-01",
           "FC16 (write multiple registers) is implemented for blocks of two or more registers only: a declared "
           "FC16 of one mapped register is answered with exception 01 (illegal function; address and byte count are "
           "checked first)"),
    Defect("undeclared_fc_answered", "68", "KZ-68-02",
           "the Modbus stack's diagnostics (FC08) and device identification (FC43) handlers are left enabled: "
           "function codes the profile does not declare get a normal answer instead of exception 01"),
    Defect("illegal_quantity_accepted", "68", "KZ-68-04",
           "read quantities are not range-checked: a read of 0 or of 126+ registers is answered with a data field "
           "of 2 x quantity bytes (zeros) instead of exception 03"),
    Defect("wrong_exception_code", "68", "KZ-68-03",
           "a request for an address outside the map is answered with exception 04 instead of 02"),
    Defect("mbap_length_ignored", "68", "KZ-68-05",
           "the MBAP length field is not checked: a frame is cut by its function code's own fields, so a frame "
           "whose length field disagrees with its bytes is answered as valid"),
    Defect("any_unit_id_answered", "68", "KZ-68-06",
           "the unit id is not checked: requests for any unit id are answered (a second device on the same "
           "line or gateway would be answered for)"),
    Defect("answers_bad_crc", "68", "KZ-68-07", "RTU: a request with a bad CRC is answered as if it were sound"),
    Defect("crash_on_malformed_frame", "49", "KZ-49-01",
           "FC 0x17 with a byte count that disagrees with its write quantity (1..121) overruns the write buffer: "
           "the process dies"),
    Defect("hang_on_flood", "49", "KZ-49-02",
           "after 1000 requests within three seconds the server stops answering for good (connections stay open)"),
    Defect("connection_limit_exhausts", "49", "KZ-49-03",
           "closed connections never free their slot: once as many connections as the limit (declared, else 8) "
           "have been opened, every new one is closed at once"),
    Defect("half_open_blocks", "49", "KZ-49-04",
           "the server reads a frame to its end before it serves anything else, with no timeout: a connection "
           "that stalls half-way through a frame stops every other connection until it completes or closes"),
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
        *CHANNEL_DEFECTS,
        *WIRE_DEFECTS,
        *ACCESS_DEFECTS,
        *AVAILABILITY_DEFECTS,
    )
}

# The heat meter (cl. 96).
HEAT_DEFECTS: dict[str, Defect] = {
    d.name: d
    for d in (
        Defect("heat_mass_not_recorded", "96", "KZ-96-01",
               "the meter does not record the heat carrier's mass: its register is not served (exception 02)"),
        Defect("heat_return_sensor_low", "96", "KZ-96-01",
               "the return temperature sensor reads 20 K low (90/55 °C shows as 90/35): heat overstated ~57 %, the "
               "registers consistent with each other (KZ-96-03 fails as well)"),
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
        *ACCESS_BODY_DEFECTS,
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


# The simulated process controller (`harness sim controller`, OPC UA): software update (cl. 70), access
# control (cl. 66, 76, 78) and the control-system event log (cl. 69).
CONTROLLER_DEFECTS: dict[str, Defect] = {
    d.name: d
    for d in (
        Defect("update_accepts_unsigned", "70", "KZ-70-02",
               "an image without a signature is installed: the signature is checked only when one is present"),
        Defect("update_accepts_corrupted", "70", "KZ-70-03",
               "an image whose payload does not match its header's SHA-256 is installed unchecked (an error "
               "path skips the signature check)"),
        Defect("update_no_auto_rollback", "70", "KZ-70-04",
               "an activation that fails its health check or is never confirmed stays running: no automatic "
               "rollback"),
        Defect("update_rollback_loses_config", "70", "KZ-70-05",
               "a rollback to the previous version restores the factory configuration (setpoints, parameters)"),
        Defect("update_config_write_ignored", "70", "KZ-70-05",
               "once updated, the firmware acknowledges configuration writes (Good) and drops them"),
        Defect("update_power_loss_bricks", "70", "KZ-70-06",
               "the boot pointer is switched before the new slot is written: a power cut during install boots "
               "the half-written slot, which reports version 0.0.0"),
        Defect("auth_allows_anonymous", "66", "KZ-66-01",
               "anonymous sessions are accepted (with the least-privileged role) although not declared"),
        Defect("auth_accepts_none_policy", "66", "KZ-66-02",
               "a client that skips endpoint matching gets a session over SecurityPolicy None (credentials in clear)"),
        Defect("auth_no_lockout", "76", "KZ-76-02",
               "repeated wrong passwords never lock the account (failures are still logged)"),
        Defect("auth_default_password", "76", "KZ-76-03",
               "the factory account admin/admin exists with the administrator role"),
        Defect("role_viewer_can_write", "78", "KZ-78-01", "users with the viewer role can write setpoints"),
        Defect("log_missing_user", "69", "KZ-69-01", "audit log entries carry no user (ClientUserId empty)"),
        Defect("log_clearable_by_operator", "69", "KZ-69-02",
               "the audit log's clear method is allowed to operators, not only to the role with manage_log"),
        Defect("log_volatile", "69", "KZ-69-03",
               "the audit log is kept in RAM only and starts empty after a power cut"),
        Defect("endpoint_extra_policy", "68", "KZ-68-08",
               "the OPC UA stack's deprecated Basic128Rsa15 endpoints are left enabled: GetEndpoints lists a policy "
               "the profile does not declare (in the declared modes)"),
        Defect("unknown_node_wrong_status", "68", "KZ-68-09",
               "the access layer looks every Read and Write up in its own tag table first and answers a node that "
               "does not exist with Bad_InternalError instead of Bad_NodeIdUnknown"),
        Defect("write_wrong_type_accepted", "68", "KZ-68-10",
               "a setpoint or parameter written with another data type is accepted: a String is parsed as a number, "
               "one that does not parse is acknowledged Good and dropped"),
        Defect("access_denied_wrong_status", "68", "KZ-68-11",
               "a write or call the role does not grant is still refused, but as Bad_NotWritable / "
               "Bad_NotExecutable instead of Bad_UserAccessDenied"),
        Defect("auth_trusts_any_certificate", "66", "KZ-66-03",
               "no trust list: any client certificate opens a secure channel and is accepted as user identity "
               "(with the role trusted certificates get by default)"),
        Defect("auth_session_certificate_optional", "66", "KZ-66-03",
               "the trust list is consulted only for a CreateSession that carries a ClientCertificate (the stock "
               "asyncua way): a channel opened with an untrusted certificate gets a session when CreateSession "
               "leaves the field empty"),
        Defect("auth_skips_client_signature", "66", "KZ-66-03",
               "ActivateSession's ClientSignature is never verified: a session is activated without proof that the "
               "client holds the key of the certificate it presented"),
        Defect("session_usable_unactivated", "66", "KZ-66-01",
               "a Read on a session that was created but never activated is served: no identity was ever given"),
        Defect("identity_writable", "78", "KZ-78-01",
               "the serial number was left writable after commissioning: a role that may change parameters can "
               "overwrite it (Write answers Good), though it is read-only to everyone"),
        Defect("auth_ignores_password", "76", "KZ-76-01",
               "the password check is skipped for accounts of the most privileged role (a service back door): "
               "their user name is accepted with any password"),
        Defect("log_capacity_short", "69", "KZ-69-04",
               "only a quarter of the declared audit-log capacity is really kept (the oldest entries go early): "
               "12 months at the declared event rate do not fit"),
        Defect("update_not_logged", "70", "KZ-70-01",
               "the success path of the update service has no audit call: transfer, install, activate, confirm "
               "and rollback commanded by a user leave no firmware_update entry (what the device does by itself "
               "and refusals are still logged)"),
        Defect("update_accepts_downgrade", "70", "KZ-70-07",
               "the version policy is not applied: an image below the declared min_version installs although the "
               "profile declares below_min_version: refuse"),
        Defect("update_no_indication", "70", "KZ-70-08",
               "the new-version indication is not wired: a newer valid image that was received is logged as "
               "available, but AvailableVersion stays empty"),
        Defect("crash_on_malformed_hello", "49", "KZ-49-01",
               "the UA-TCP Hello's EndpointUrl length is read as unsigned and trusted: a Hello whose length field "
               "runs past the end of the message (a negative length other than -1 included) overruns the receive "
               "buffer: the process dies"),
        Defect("opcua_hang_on_flood", "49", "KZ-49-02",
               "after 500 service requests within three seconds (all connections together) the server stops "
               "answering for good: open connections get no answer to anything, new ones are closed at once"),
        Defect("opcua_connection_limit_exhausts", "49", "KZ-49-03",
               "the refusal path breaks the connection table's free list: once a connection has been refused for "
               "want of a slot (limit declared, else 8), closed connections never free theirs — every new one is "
               "closed at once"),
        Defect("opcua_half_open_blocks", "49", "KZ-49-04",
               "the server reads a UA-TCP message to its end before it serves anything else, with no timeout: a "
               "connection that stalls half-way through a HEL or MSG stops every other client until it completes "
               "or closes"),
    )
}


def parse_defects(spec: str | None, catalogue: dict[str, Defect]) -> set[str]:
    """Comma-separated defect names; an unknown name is an error that lists the known ones."""
    names = {n.strip() for n in (spec or "").split(",") if n.strip()}
    unknown = names - catalogue.keys()
    if unknown:
        raise ValueError(f"unknown defect(s) {', '.join(sorted(unknown))}; known: {', '.join(catalogue)}")
    return names


def print_catalogue(catalogue: dict[str, Defect]) -> int:
    """``--list-defects`` of every simulator: a line per defect (name, clause, the check it must fail, what it
    does), names padded to the longest; the exit code 0."""
    width = max((len(name) for name in catalogue), default=0) + 2
    for d in catalogue.values():
        print(f"{d.name:{width}} cl. {d.clause}  {d.expect}  {d.description}")
    return 0

