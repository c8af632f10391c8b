"""tek-harness: conformance and certification of energy equipment against the Kazakhstan Rules.

Import-light on purpose: ``harness --help`` and simulator start-up must stay fast, so heavy
libraries are imported by the modules that need them.
"""

__version__ = "0.1.0"
