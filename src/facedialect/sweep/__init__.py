"""Sweeps: a grid of studies (placeholder)."""
