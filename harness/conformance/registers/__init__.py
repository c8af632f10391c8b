"""Suite `registers`."""
