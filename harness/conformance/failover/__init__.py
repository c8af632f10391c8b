"""Suite `failover`: main and reserve channels with automatic switchover (cl. 85, 84, 71)."""
