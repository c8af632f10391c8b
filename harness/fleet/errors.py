"""The fleet's one error for people: why a fleet command cannot go on, in one line (file:line for a rig)."""


class FleetError(Exception):
    """The broker is unreachable, a rig or option is refused, a job is unknown …; the message says which."""
