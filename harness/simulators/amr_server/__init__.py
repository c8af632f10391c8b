"""The golden AMR server (``harness sim amr-server``): a real web application on a real database.

Starlette on uvicorn serves the REST contract of docs/amr-api.yaml; SQLAlchemy 2 keeps meters,
readings, users, corrections and the audit log in SQLite in the state directory (or PostgreSQL by
``--db``); the three roles' workstation pages are server-rendered under ``/ui`` (``pages.py``); a poller
reads the field meters over Modbus with its own pymodbus client (it shares nothing with the harness's
driver). Like every simulator it is a device: it never imports the harness's test side, and its
seeded defects (``defects.py``) each break one clause the ``amr`` suite checks.
"""
