"""Judging a run: metrics against ground truth, the unit's contract checks, the run's result and its accounting."""
