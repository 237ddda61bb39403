"""Feature cache, splits, protocols and the batched multi-run trainer (SCIENCE §4-5)."""
