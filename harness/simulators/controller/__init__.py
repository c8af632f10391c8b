"""The golden simulated process controller (`harness sim controller`): OPC UA, its own profile.

A heat-substation controller behind an asyncua server built from device_profiles/tek-sim-pc1.yaml:
users with roles and lockout, sessions refused over SecurityPolicy None and from untrusted
certificates, an audit log in NVM read with HistoryRead, and signed A/B software update with
health check and rollback. Modules, each with one job:

- ``profile`` — the simulator's own reading of its profile (plain YAML)
- ``device`` — the controller: configuration, clock, process, and what a write or call does
- ``process_model`` — the heating circuit (first-order, device time)
- ``users`` / ``auth`` / ``access`` / ``channel`` — accounts and lockout, authentication,
  roles on writes and calls, the SecurityPolicy None guard
- ``audit`` / ``audit_events`` — the non-volatile audit log and its OPC UA events and history
- ``update`` / ``slots`` / ``vendor_kit`` — firmware update, A/B slots, the vendor's images
- ``certificate`` / ``server`` / ``cli`` — PKI, the address space, the process

Seeded defects: ``harness.simulators.defects.CONTROLLER_DEFECTS``.
"""

from harness.simulators.controller.cli import main

__all__ = ["main"]
