"""cl. 97 event journals: what is recorded, that it is stored and kept, and that it is transmitted."""
