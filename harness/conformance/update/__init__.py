"""cl. 70 secure software update with rollback: signed images only, automatic and operator rollback,
power loss at every step, the minimum-version policy and the new-version indication."""
