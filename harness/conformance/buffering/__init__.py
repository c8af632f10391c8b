"""Suite `buffering`: no data lost across channel outages and power loss (cl. 83, 61)."""
