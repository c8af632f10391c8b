"""Fleet: certification jobs across many benches on Celery 5 + Redis (issue 17).

A job is a rig and every file it names, shipped with their SHA-256 (``job``); a bench host runs it
through `harness certify` exactly as a person would (``task``), publishes progress per check, and
puts the sealed run (the `harness bundle` archive) in a result store (``store``). ``worker`` serves
one bench, ``client`` submits, watches, fetches and cancels; ``app`` is the Celery application
(``celery -A harness.fleet.app flower`` monitors it).
"""
