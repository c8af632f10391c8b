"""Suite `robustness` (cl. 49; IEC 62443-3-3 SR 3.5 and SR 7.1): the device keeps its essential function
under malformed and fuzzed frames, request storms, connection storms and half-open connections, and loses
nothing. Destructive; loopback, harness namespaces and the rig's lab_allow_list only (``wire/safety.py``).
Failing cases are kept as reproducers (pcap + seed) for ``harness replay``."""
