"""Fixtures of the evaluation tests: a project of demo panels with approved annotations (the
synthetic defects, as drawn), its manager, and the demo detector checked and named production."""

from tests.insight.helpers import approved_panels, demo_model, manager, panels

__all__ = ["approved_panels", "demo_model", "manager", "panels"]
