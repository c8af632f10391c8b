"""A ciphered association over harness runs (issue 16): the meter keeps the last invocation counter it accepted
from each client in NVM and refuses a lower one; the driver reads the profile's counter object (0.0.43.1.e.255)
through the public client before the AARQ and continues above it.

Real parts: the simulated meter is a process, killed and restarted on the same NVM (a power cut); the first run
is another Python process; the second run a fresh driver whose process-wide counters are empty (no memory).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import load_profile, load_rig
from harness.devices import dlms
from harness.devices.dlms import DlmsDevice
from harness.devices.dlms_link import AssociationRefused
from harness.devices.transcript import Transcript
from tests.test_dlms import PROFILE, RIG, Sim, running_dlms_sim

COUNTER_OBIS = "0.0.43.1.1.255"  # the SPODES-like profile's: the last counter accepted from SAP 1
FIRST_RUN = """
import sys
from pathlib import Path
from harness.config import load_profile, load_rig
from harness.devices.dlms import DlmsDevice
loaded = load_rig(Path(sys.argv[1]))
device = DlmsDevice("meter", load_profile(Path(sys.argv[2])), loaded.rig.duts["meter"], loaded.rig.timing, None,
                    {"host": "127.0.0.1", "port": int(sys.argv[3])})
link = device.open_link("management")
clock = device.attribute(8, device.map.clock.obis, 2)
for _ in range(5):
    assert isinstance(device.get_on(link, [clock])[0], bytes | bytearray)
link.close()
"""


def _fresh_device(sim: Sim, profile: object, transcript: Transcript | None = None) -> DlmsDevice:
    loaded = load_rig(RIG)
    return DlmsDevice("meter", profile, loaded.rig.duts["meter"], loaded.rig.timing, transcript,  # type: ignore[arg-type]
                      {"host": "127.0.0.1", "port": sim.port})


def _public_counter(device: DlmsDevice) -> int:
    link = device.open_link("public")
    try:
        return device.get_on(link, [device.attribute(1, COUNTER_OBIS, 2)])[0]
    finally:
        link.close()


def test_a_second_run_continues_above_the_counter_the_meter_remembers(tmp_path, monkeypatch):
    """Run 1 (its own process) reads through the ciphered management association; the meter is power-cut and
    restarted on the same NVM; run 2, a driver with no memory of run 1: without the counter object its AARQ
    (counter 1) is refused as a replay, with an error naming the association and why; with it, it reads the
    object through the public client and is accepted."""
    state = tmp_path / "nvm"
    with running_dlms_sim(tmp_path, state) as sim:
        run = subprocess.run([sys.executable, "-c", FIRST_RUN, str(RIG), str(PROFILE), str(sim.port)],
                             capture_output=True, text=True, timeout=60, check=False)
        assert run.returncode == 0, run.stderr
    with running_dlms_sim(tmp_path, state) as sim:  # the same meter after a power cut
        monkeypatch.setattr(dlms, "INVOCATION_COUNTERS", {})  # the harness side restarted: no counter in memory
        profile = load_profile(PROFILE)
        remembered = _public_counter(_fresh_device(sim, profile))
        assert remembered >= 6  # the AARQ, the HLS reply and five GETs of run 1, kept over the power cut

        blind = load_profile(PROFILE)
        assoc = blind.dlms.associations["management"]
        blind.dlms.associations["management"] = assoc.model_copy(update={"invocation_counter": None})
        blind_transcript = Transcript(tmp_path / "blind.jsonl")
        with _fresh_device(sim, blind, blind_transcript) as device, \
                pytest.raises(AssociationRefused, match=r"management.*rejected.*declares no invocation_counter"):
            device.open_link("management")
        blind_transcript.close()
        said = [json.loads(line) for line in (tmp_path / "blind.jsonl").read_text().splitlines()]
        assert said[0]["op"] == "invocation-counter" and "declares no invocation_counter" in said[0]["note"]

        transcript = Transcript(tmp_path / "transcript.jsonl")
        with _fresh_device(sim, profile, transcript) as device:
            link = device.open_link("management")
            try:
                assert isinstance(device.get_on(link, [device.attribute(8, profile.dlms.clock.obis, 2)])[0],
                                  bytes | bytearray)
                assert link.connection_start == remembered + 1
            finally:
                link.close()
        transcript.close()
    records = [json.loads(line) for line in Path(tmp_path / "transcript.jsonl").read_text().splitlines()]
    assert [r["association"] for r in records[:2]] == ["public", "public"]  # the counter read, before the AARQ
    assert records[1]["op"] == "get" and "00002b0101ff" in records[1]["apdu_out"]  # 0.0.43.1.1.255, attribute 2
    text = (tmp_path / "transcript.jsonl").read_text().lower()
    cred = load_rig(RIG).rig.duts["meter"].credentials["dlms_management"]
    assert cred.encryption_key.lower() not in text and cred.authentication_key.lower() not in text
