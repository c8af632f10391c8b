"""cl. 97 event journals: what is recorded, that it is stored and kept, and that it is transmitted; cl. 69
audit logs of controllers (test_controller_audit.py): who did what, protected from non-administrators, kept
12 months."""
