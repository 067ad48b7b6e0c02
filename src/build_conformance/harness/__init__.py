"""The run: the pytest plugin, configuration, the run session, preflight, xdist hand-over."""
