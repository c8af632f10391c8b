"""Fault injectors: power switches, time control, serial lines for simulated DUTs (more to come:
link faults, firmware forgery). Each is registered through ``harness_add_fault_injectors``."""
