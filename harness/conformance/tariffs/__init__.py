"""Suite `tariffs`."""
