"""The write protection of every simulated Modbus device (cl. 66, 78, 94), as its profile declares it.

The password written to the profile's unlock register opens a write session; the session closes
``session_s`` after the unlock or after the last protected write. It is timed in the device's
*physical* time — wall time, unless the simulator is fast-forwarded — so a check that lets device
time pass (``dut.time.elapse``) closes it as waiting would on a real meter. The session lives in
RAM: a power cut closes it, and so does a wrong password.

Answers, as the shared body gives them: a protected write (clock, settings) without an open session
→ exception 04 (server device failure: the device will not do it now), nothing changed; a wrong
password → exception 03 (illegal data value), logged as ``auth_failure`` where the journal has a
code for it. The password is the lab's, as a rig's ``credentials.unlock`` gives it to the harness; the harness hands it
over in a file (``--credentials-file``, kept out of ``ps``), a test may say ``--unlock-password``; without one
nothing unlocks.
Defect ``meter_clock_unprotected`` lets protected writes through without a session.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.config.write_protection import Protected, WriteProtection
from harness.simulators.regimage import encode_point


class SimWriteGuard:
    """The unlock register and the write session of one simulated device."""

    def __init__(self, spec: WriteProtection, defects: set[str], physical: Callable[[], float]) -> None:
        self.spec = spec
        self.unprotected = "meter_clock_unprotected" in defects
        self._physical = physical
        self._expected: list[int] | None = None  # the registers of the right password; None: nothing unlocks
        self._open_until: float | None = None

    def set_password(self, password: str | None) -> None:
        """The device's password (ValueError when it cannot be written to the declared register)."""
        unlock = self.spec.unlock
        self._expected = None if password is None else encode_point(unlock.as_point(),
                                                                     unlock.password_value(password))

    def unlock(self, registers: list[int]) -> bool:
        """A write to the unlock register: the right password opens a session; anything else closes any."""
        if self._expected is not None and registers == self._expected:
            self._open_until = self._physical() + self.spec.session_s
            return True
        self._open_until = None
        return False

    def permits(self, what: Protected) -> bool:
        """May a write of ``what`` be done now?"""
        if not self.spec.guards(what) or self.unprotected:
            return True
        return self._open_until is not None and self._physical() < self._open_until

    def wrote(self, what: Protected) -> None:
        """A protected write was done: an open session stays open for another ``session_s``."""
        if self.spec.guards(what) and self._open_until is not None and self._physical() < self._open_until:
            self._open_until = self._physical() + self.spec.session_s
