"""Suite ``amr``: an AMR server judged against a field of meters whose truth the harness reads itself."""
