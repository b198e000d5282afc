"""Watching a deployed model: the training reference profile and drift against it."""
