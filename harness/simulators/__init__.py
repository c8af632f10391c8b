"""Golden simulated devices and their catalogue of seeded defects.

Simulators are devices: they speak real protocols on real sockets or pseudo-terminals, keep
non-volatile state in a file they fsync, and lose everything else when killed. They never import
the harness's test side (suites, fixtures, reporting) — a vendor could have written them.
"""
