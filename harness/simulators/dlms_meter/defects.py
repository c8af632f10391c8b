"""The simulated DLMS meter's seeded defects: the golden meter's metering, NVM and clock defects it shares
(same names, same checks), and the DLMS ones of its own. Each names the check that must FAIL on it."""

from __future__ import annotations

from harness.simulators.defects import METER_DEFECTS, Defect

# The golden meter's defects this simulator reproduces (energy model, tariffs, NVM, RTC, settings).
SHARED = ("register_missing", "reactive_not_counted", "counter_glitch", "tariff_total_mismatch", "tariff_swapped",
          "tariff_stuck", "nvm_write_lag", "settings_volatile", "clock_set_ignored", "clock_resets_on_power_loss",
          "rtc_stops_when_off", "clock_drift",
          # the journal and load-profile model (simulators/journal.py, load_profile.py) behind the class 7 objects
          "journal_time_skew", "journal_missing_power_events", "journal_volatile", "journal_sequence_gap",
          "journal_stops_when_full", "journal_capacity_short", "journal_unreadable", "interval_period_mismatch",
          "interval_gap", "interval_misaligned", "interval_increments_wrong", "interval_power_cut_unflagged",
          "interval_clock_set_unflagged", "tamper_not_logged")

DLMS_OWN = (
    Defect("dlms_scaler_mismatch", "95", "KZ-95-02",
           "the active energy registers report scaler_unit 10^0 Wh but their value counts kWh"),
    Defect("dlms_lls_any_password", "94", "KZ-94-04",
           "an LLS association is accepted whatever password the AARQ carries (only its presence is checked)"),
    Defect("dlms_unknown_object_answered", "68", "KZ-68-12",
           "a GET of an object the meter does not have is answered with data (0) instead of object-undefined"),
    Defect("dlms_any_context_accepted", "68", "KZ-68-13",
           "the application context name of the AARQ is not checked: an association asked for with ciphering (which "
           "this meter does not offer) is accepted and served in the clear"),
    Defect("dlms_block_transfer_truncates", "68", "KZ-68-14",
           "the last block of a long GET loses its last byte (its raw-data length agrees with the cut data)"),
    Defect("dlms_energy_writable", "94", "KZ-94-06",
           "an association that may set settings may SET energy registers too (their value becomes the count)"),
    Defect("dlms_pdu_size_ignored", "68", "KZ-68-14",
           "the client's max receive PDU from the AARQ is ignored: long answers come whole, never in blocks"),
    Defect("dlms_hls_accepts_bad_tag", "94", "KZ-94-07",
           "an HLS-GMAC association is established whatever tag the client's answer to the challenge carries (the "
           "GMAC is never verified)"),
    Defect("dlms_plain_apdu_accepted", "94", "KZ-94-08",
           "a ciphered association answers requests sent in the clear as well (the security policy is not enforced)"),
    Defect("dlms_invocation_counter_reuse", "94", "KZ-94-09",
           "the invocation counter of a protected request is not checked: a replayed request is answered again"),
    Defect("dlms_public_client_sets_clock", "94", "KZ-94-05",
           "the public client (no authentication) may SET the clock: the access rights of the management "
           "association were copied to it"),
)

# Defects of the HDLC data link (a rig on a serial line: rigs/sim-dlms-meter-hdlc.yaml)
HDLC_OWN = (
    Defect("dlms_hdlc_answers_bad_fcs", "68", "KZ-68-15",
           "on HDLC the frame check sequences are not verified: a frame damaged on the line is answered as sent"),
    Defect("dlms_hdlc_hangs_on_malformed", "49", "KZ-49-01",
           "on HDLC a frame whose FCS checks but whose address field cannot be read (longer than 4 octets, or 3) "
           "stops the data link: nothing on the line is answered again until the meter restarts"),
)

DLMS_METER_DEFECTS: dict[str, Defect] = {d.name: d for d in (*(METER_DEFECTS[n] for n in SHARED), *DLMS_OWN,
                                                                *HDLC_OWN)}
