"""Shared foundations of every engine stage: clock, paths, profile, record dtypes."""
