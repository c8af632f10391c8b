"""cl. 31 (with 30, 60, 80) interval data: the load profile is captured at ≤ 15-minute intervals, complete,
consistent with the energy registers, and flags the intervals whose data a power cut or a clock set touched."""
