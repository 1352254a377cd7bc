"""Label Studio 1.23.2's times on the paths issue 10 compares DefectLab with: the references of
the aims printed by ``bench/tasks.py`` (imports) and ``bench/export.py`` (the JSON export).

Two measurements, both of Label Studio driven through its HTTP API the way a script drives it,
on a machine of the same kind as the benches' (2 cores), best of 3:

* ``ISSUE``: by the author of issue 10, on Label Studio's default database (SQLite). The issue's
  aims are these ÷ 10, and the benches print ``met`` / ``MISSED`` against them.
* ``REMEASURED``: on 2026-12-05, on SQLite and on PostgreSQL 15 (the machine's server), with
  ``label-studio start`` (its own server: Django's runserver, one process) and an API token.
  Each import went into a fresh project as one ``POST /api/projects/{id}/import`` with the same
  JSON text the bench sends (the URLs as ``{"data": {"image": …}}``), timed until the answer
  (the community edition imports synchronously; the counts of tasks, annotations and
  predictions were checked after every run); the export is ``GET /api/projects/{id}/export
  ?exportType=JSON&download_all_tasks=true`` of the 10k annotated tasks, until the last byte.
  The benches print DefectLab's time beside these, as "× faster than Label Studio", on the
  database they run on.

Label Studio itself is not part of this repository (nor a script that installs it); these are
figures, kept with how they were taken.
"""

from __future__ import annotations

PATHS = ("urls", "label_studio", "export_json")  # 100k URLs, 10k annotated tasks, 10k as JSON

ISSUE = {"urls": 14.0, "label_studio": 13.8, "export_json": 14.8}  # seconds, SQLite

REMEASURED = {
    "sqlite": {"urls": 9.893, "label_studio": 10.953, "export_json": 10.387},
    "postgresql": {"urls": 15.515, "label_studio": 16.322, "export_json": 14.364},
}
REMEASURED_ON = "2026-12-05"


def times_faster(vendor: str, path: str, seconds: float) -> float:
    """How many times Label Studio's re-measured time on ``vendor`` is ``seconds``."""
    return REMEASURED[vendor][path] / seconds
