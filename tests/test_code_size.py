"""Sizes the house keeps: no module over 600 lines, no function or method over 80 lines.

A module that grows past the limit is split by noun; a function that grows past it is split into
well-named steps. Migrations are generated and do not count."""

from __future__ import annotations

import ast
from pathlib import Path

import defectlab

SOURCE = Path(defectlab.__file__).parent
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(path for path in SOURCE.rglob("*.py") if "migrations" not in path.parts)


def _name(path: Path) -> str:
    return str(path.relative_to(SOURCE.parent))


def test_the_source_tree_is_where_the_tests_look() -> None:
    assert SOURCE.name == "defectlab"
    assert any(path.name == "workflow.py" for path in _modules())


def test_no_module_is_over_600_lines() -> None:
    too_long = [
        f"{_name(path)}: {lines} lines"
        for path in _modules()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not too_long, f"split these modules by noun (at most {MAX_MODULE_LINES}): {too_long}"


def test_no_function_is_over_80_lines() -> None:
    too_long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{_name(path)}:{node.lineno} {node.name}: {lines} lines")
    assert not too_long, f"split these functions (at most {MAX_FUNCTION_LINES}): {too_long}"
