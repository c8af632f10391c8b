"""The Device API (what suites may ask of a DUT) and the protocol drivers behind it."""
