"""The conformance suites: one package per suite, each check with a stable KZ id.

Suites talk to DUTs only through the Device API, the power switch and the time control of the
``dut`` fixture, and take every limit from the Rules, the profile or the rig.
"""
