"""An AMR server's field at run time: the meters it must read, brought up and read by the harness too.

Each field meter is an ordinary meter DUT spec (launched simulator or a real meter on the bench) with
its own ``DutRuntime`` — its Device is the harness's ground truth and its power switch is how a meter
goes dead. The server learns its field from a provisioning file (placeholder ``{field_file}``): per
meter its id, address and the one register the server reads, taken from the meter's own profile.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.bench import BenchError, DutRuntime
from harness.config.profile import Profile


class FieldError(BenchError):
    """The field cannot be provisioned as the rig asks (a meter the server cannot be told how to read): the
    server's checks are INCONCLUSIVE as a bench problem, with this reason."""


class Field:
    """The meters of one AMR server DUT, by name."""

    def __init__(self, server: Any, profiles: dict[str, tuple[Profile, Path]]) -> None:
        self.server = server
        self.meters: dict[str, DutRuntime] = {}
        for name, spec in server.spec.field.items():
            profile, path = profiles[name]
            self.meters[name] = DutRuntime(f"{server.name}.{name}", spec, profile, path, server.timing,
                                           server.out_dir, server.transcript, server.faults, list(spec.defects),
                                           seed=server.seed, private_dir=server.private_dir,
                                           redactor=server.redactor)

    def start(self) -> Path:
        """Bring every meter up and write the provisioning file; its path. One after the other, from this thread:
        a launched process dies with the thread that started it (``launcher.die_with_parent``), so a pool thread
        would take its meters with it when it ends."""
        for meter in self.meters.values():
            meter.start()
        path = self.server.state_dir / "field.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"meters": [self._provision(n, m) for n, m in self.meters.items()]}, indent=1),
                        encoding="utf-8")
        return path

    def quantity(self, name: str) -> str:
        """The quantity the server reads from this meter (the server profile's ``reading_quantities``)."""
        kind = self.meters[name].profile.kind.value
        quantity = self.server.profile.amr.reading_quantities.get(kind)
        if quantity is None:
            raise FieldError(f"{self.server.name}: the profile's amr.reading_quantities names no quantity for {kind}")
        return quantity

    def _provision(self, name: str, meter: Any) -> dict[str, Any]:
        quantity = self.quantity(name)
        modbus = meter.profile.modbus
        if modbus is None or quantity not in modbus.points or meter.spec.transport.tcp is None:
            raise FieldError(f"{self.server.name}: field meter {name} is not a Modbus TCP meter declaring {quantity}; "
                             "this provisioning file describes Modbus TCP meters only")
        host, port = meter.main_address()
        return {"id": name, "kind": meter.profile.kind.value, "host": host, "port": port, "unit_id": meter.spec.unit_id,
                "quantity": quantity, "point": modbus.points[quantity].model_dump(mode="json")}

    def stop(self) -> None:
        error: BaseException | None = None
        for meter in self.meters.values():
            try:
                meter.stop()
            except BaseException as exc:  # stop the others all the same
                error = error or exc
        if error is not None:
            raise error
