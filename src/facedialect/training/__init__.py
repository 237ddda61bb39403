"""Feature cache, splits, protocols and the batched multi-run trainer (docs/method.md §4-5)."""
