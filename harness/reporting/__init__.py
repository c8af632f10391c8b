"""Check records, clause verdicts, the clause catalogue and the console table."""
