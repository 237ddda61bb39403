"""Analyses: functions that take arrays or DataFrames and return DataFrames (no I/O)."""
