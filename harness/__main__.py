"""``python -m harness`` — the same as the ``harness`` console script (rigs launch simulators this way)."""

from harness.cli import main

raise SystemExit(main())
