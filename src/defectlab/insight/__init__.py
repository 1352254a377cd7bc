"""Insight: statistics of a project's data, evaluation of models, label-error finding."""
