"""Projections: read models folded from the event log. The folds are pure ``evolve`` functions."""
