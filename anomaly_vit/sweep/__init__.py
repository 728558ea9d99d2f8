"""Sweeps: the value a sweeper optimises, and the report that turns a multirun into one answer."""
