"""One module per stage of the pipeline (probe, pin, fetch, build, verify, publish) and ``auto``."""
