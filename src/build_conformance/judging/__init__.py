"""Judging: what the target answered, turned into per-requirement observations and verdicts."""
