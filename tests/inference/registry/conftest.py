"""The sandbox's limits kept small (jobs run here by the shared ``queued`` / ``drain``)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def limits(settings: Any) -> None:
    settings.MODEL_CHECK_MEMORY_MB = 768  # far above a small graph's needs, far below 4 GiB
    settings.MODEL_CHECK_SECONDS = 60.0
