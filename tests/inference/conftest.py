"""Fixtures shared by the pre-annotation and sensitivity tests: a project of demo panels, its
manager, and the demo detector registered, checked and named production."""

from tests.inference.test_preannotation import demo_model, manager, panels

__all__ = ["demo_model", "manager", "panels"]
