"""Suite `nvm`."""
