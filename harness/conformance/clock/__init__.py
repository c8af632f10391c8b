"""Suite `clock`."""
