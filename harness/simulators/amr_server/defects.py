"""The golden AMR server's seeded defects: each breaks one clause the ``amr`` suite checks."""

from __future__ import annotations

from harness.simulators.defects import Defect

AMR_DEFECTS: dict[str, Defect] = {d.name: d for d in (
    Defect("status_never_inactive", "62", "KZ-62-01",
           "a meter is shown active however long it has not answered (status from the meter list, not the polls)"),
    Defect("reading_scaled_wrong", "62", "KZ-62-02",
           "readings are stored divided by 1000 (Wh taken for kWh) while the unit stays the meter's"),
    Defect("reading_time_is_poll_start", "62", "KZ-62-02",
           "each automatic reading is stamped with the start of its poll cycle, not the time the meter answered "
           "(the meters are read spread over the interval, so the value belongs to a later time than its stamp)"),
    Defect("reading_interval_missed", "62", "KZ-62-02",
           "every 20th poll cycle of each meter is lost: no reading for that interval (2 or 3 a day at 30 min)"),
    Defect("manual_read_ignored", "62", "KZ-62-03",
           "a manual reading request is acknowledged (202) but no reading is taken"),
    Defect("export_drops_last_row", "62", "KZ-62-04", "every export format leaves out the period's last reading"),
    Defect("deleted_user_still_logs_in", "62", "KZ-62-05",
           "deleting a user hides it from the user list but its login still works"),
    Defect("operator_manages_users", "62", "KZ-62-06",
           "the operator workstation may list, add and delete users although only the administrator may"),
    Defect("subscriber_sees_all_meters", "18", "KZ-18-01",
           "a subscriber is shown every meter and may read every meter's readings"),
    Defect("subscriber_leak_via_export", "18", "KZ-18-01",
           "a subscriber is shown only its own meters, but its CSV export holds every meter's readings"),
    Defect("diagnostics_silent", "77", "KZ-77-01",
           "the link to every meter is always reported ok: a meter that stops answering shows no communication fault"),
    Defect("correction_without_confirmation", "48", "KZ-48-01",
           "a proposed correction changes the reading at once, before anybody confirms it"),
    Defect("correction_not_audited", "48", "KZ-48-01", "corrections are applied but never written to the audit log"),
    Defect("archived_report_mutable", "62", "KZ-62-07",
           "an archived report can be changed afterwards: PUT /archive/{id} is accepted and rewrites it"),
    Defect("archived_report_recomputed", "62", "KZ-62-07",
           "an archived report is computed again from the readings whenever it is read: a correction confirmed "
           "after archiving changes it"),
    Defect("analytics_max_wrong", "62", "KZ-62-08",
           "analytics give as the maximum consumption the largest register value, not the largest consumption"),
    Defect("api_stalls", "67", "KZ-67-01",
           "every 20th authenticated API request is answered 1.5 s late, beyond the 1 s response time the profile "
           "declares (amr.availability_poll)"),
    Defect("subscriber_leak_via_reports", "18", "KZ-18-01",
           "a subscriber's reports and analytics cover every meter of the field, not only its own"),
    Defect("http_hangs_on_malformed", "49", "KZ-49-01",
           "a connection that starts with a malformed HTTP request line blocks the server's event loop for 3 s "
           "before it is refused: every client waits, the meter list too (http_defects.py)"),
    Defect("http_connection_limit_leak", "49", "KZ-49-03",
           "a connection that closes while the server is at its connection limit is never freed: after a storm "
           "every new connection is answered 503 (http_defects.py)"),
)}
