"""The transcript writes exactly the redaction rule's line, whether or not a record could hold a secret."""

from __future__ import annotations

import json

from harness.devices.transcript import Transcript
from harness.redaction import Redactor


def test_every_line_is_the_rule_applied_to_its_record(tmp_path):
    secrets = ["correct-horse", "2718", 'qu"ote\\pass', "pässwört"]
    redactor = Redactor(secrets)
    records = [
        {"op": "read", "unit": 1, "registers": [2718, 27180, 1]},  # a number is never a secret
        {"op": "unlock", "note": "pin 2718 sent"},
        {"op": "raw", "what": "--password=correct-horse", "sent": "00ff"},
        {"op": "raw", "what": json.dumps({"password": 'qu"ote\\pass'})},  # the secret as JSON escapes it
        {"op": "raw", "what": "\npässwört\t"},
        {"op": "raw", "what": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----"},
        {"op": "read", "correct-horse": "as a key", "t_device": 1765142718.5},
    ]
    transcript = Transcript(tmp_path / "t.jsonl", redactor)
    for fields in records:
        transcript.record("meter", **fields)
    transcript.close()
    lines = (tmp_path / "t.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(records)
    for line, fields in zip(lines, records, strict=True):
        written = json.loads(line)
        expected = redactor.value({"t": written["t"], "dut": "meter", **fields})
        assert line == json.dumps(expected, separators=(",", ":"))
        assert not any(s in line or json.dumps(s)[1:-1] in line for s in secrets if s != "2718")
    assert json.loads(lines[0])["registers"] == [2718, 27180, 1]
    assert "2718" not in json.loads(lines[1])["note"]


def test_a_form_writes_the_line_record_writes(tmp_path):
    """Transcript.form (the driver's writer of answered reads) is a faster spelling of record: same bytes, the
    rule applied to its fixed fields once and to any varying value that holds a string."""
    from harness.devices.transcript import VARIES

    redactor = Redactor(["s3cret-pw"])
    transcript = Transcript(tmp_path / "t.jsonl", redactor)
    fields = [("op", "read"), ("what", "100% of s3cret-pw"), ("attempt", VARIES), ("latency_ms", VARIES),
              ("registers", VARIES)]
    write = transcript.form("meter/é", fields)
    varying = [(0, 0.512, [1, 65535, 0]), (2, 1234.0, []), (1, 7, ["s3cret-pw", None, True, 2.5e-07])]
    for values in varying:
        write(*values)
    transcript.close()
    lines = (tmp_path / "t.jsonl").read_text(encoding="utf-8").splitlines()
    for line, values in zip(lines, varying, strict=True):
        record = {"t": json.loads(line)["t"], "dut": "meter/é"}
        record.update({k: v for k, v in fields if v is not VARIES})
        record.update(zip(("attempt", "latency_ms", "registers"), values, strict=True))
        record = {k: record[k] for k in ["t", "dut", *(k for k, _ in fields)]}
        assert line == json.dumps(redactor.value(record), separators=(",", ":"))
        assert "s3cret-pw" not in line
