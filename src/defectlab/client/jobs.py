"""Jobs (follow one with a progress bar, download what it made), exports and dataset / URL
imports: each starts a job on the server, which a script waits for with ``client.jobs.wait``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from defectlab.client.errors import ApiError
from defectlab.client.progress import ProgressBar
from defectlab.client.resources import Ref, Resource, id_of, multipart
from defectlab.client.transport import pages
from defectlab.client.types import Job, parse

LONG_POLL = 30  # seconds one `?wait=` request holds (the server allows up to 60)
PROGRESS_POLL = 2  # … while a progress bar is drawn, so it moves


class JobFailed(ApiError):
    """A job that ended failed or cancelled; ``job`` is its last state."""

    def __init__(self, job: Job) -> None:
        message = job.error or f"The job ended {job.state}."
        super().__init__(200, f"job_{job.state}", message, {"job": job.id})
        self.job = job

    def __str__(self) -> str:
        return f"Job {self.job.id} ({self.job.kind}) {self.job.state}: {self.message}"


class Jobs(Resource):
    def get(self, job: Ref, *, wait: float = 0) -> Job:
        """The job; with ``wait`` (seconds, at most 60) the server holds the answer until the
        job has ended or the time is up."""
        seconds = max(0, min(int(wait), 60))
        answer = self._t.call(
            "GET",
            f"/api/jobs/{id_of(job)}/",
            params={"wait": seconds or None},
            timeout=seconds + 30 if seconds else None,
        )
        return parse(Job, answer)

    def list(self, *, organization: Ref | None = None, project: Ref | None = None) -> Iterator[Job]:
        """Your organizations' jobs, newest first (every page, fetched as the iteration goes)."""
        params = {
            "organization": id_of(organization) if organization is not None else None,
            "project": id_of(project) if project is not None else None,
        }

        def fetch(cursor: str | None) -> dict[str, Any]:
            answer: dict[str, Any] = self._t.call(
                "GET", "/api/jobs/", params={**params, "cursor": cursor}
            )
            return answer

        for page in pages(fetch):
            yield from (parse(Job, row) for row in page["results"])

    def items(self, job: Ref, *, state: str | None = None) -> Iterator[dict[str, Any]]:
        """A URL import's result per address: ``{"index", "url", "state", "error", "rule",
        "task"}``, in list order."""

        def fetch(cursor: str | None) -> dict[str, Any]:
            answer: dict[str, Any] = self._t.call(
                "GET", f"/api/jobs/{id_of(job)}/items/", params={"state": state, "cursor": cursor}
            )
            return answer

        for page in pages(fetch):
            yield from page["results"]

    def wait(
        self,
        job: Ref,
        *,
        timeout: float | None = None,
        progress: bool = False,
        check: bool = True,
    ) -> Job:
        """Follow the job until it ends, one long-polling request at a time, and answer its last
        state. ``timeout`` (seconds; None: no limit) raises TimeoutError with the job still
        running; ``progress`` draws a bar on stderr; ``check`` raises JobFailed when the job
        failed or was cancelled."""
        deadline = None if timeout is None else time.monotonic() + timeout
        current = job if isinstance(job, Job) else self.get(job)
        bar = ProgressBar(current.title or current.kind or "Job") if progress else None
        try:
            while True:
                if bar is not None:
                    bar.update(current.done, current.total or None)
                if current.finished:
                    break
                hold = PROGRESS_POLL if progress else LONG_POLL
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(
                            f"Job {current.id} is still {current.state} after {timeout} s."
                        )
                    hold = min(hold, max(1, int(left)))
                current = self.get(current.id, wait=hold)
        finally:
            if bar is not None:
                bar.close()
        if check and not current.succeeded:
            raise JobFailed(current)
        return current

    def download(self, job: Ref, target: str | os.PathLike[str], *, progress: bool = False) -> Path:
        """Stream the file a job made (an export's zip) to ``target`` (a file, or a folder to
        put it in under the server's name); answers the file's path."""
        bar = ProgressBar("Downloading", unit="B") if progress else None
        try:
            return self._t.download(
                f"/api/jobs/{id_of(job)}/download/",
                target,
                progress=bar.update if bar is not None else None,
            )
        finally:
            if bar is not None:
                bar.close()

    def cancel(self, job: Ref) -> Job:
        return parse(Job, self._t.call("POST", f"/api/jobs/{id_of(job)}/cancel/"))

    def retry(self, job: Ref) -> Job:
        return parse(Job, self._t.call("POST", f"/api/jobs/{id_of(job)}/retry/"))


class Exports(Resource):
    def start(
        self,
        project: Ref,
        format: str = "yolo",
        *,
        only_approved: bool = False,
        include_unlabeled: bool = False,
        include_predictions: bool = False,
        include_images: bool = True,
        split: Mapping[str, float] | None = None,
        seed: int = 0,
        to_storage: bool = False,
    ) -> Job:
        """Start an export of the project as a dataset (``yolo``, ``yolo_seg``, ``coco``,
        ``voc``, ``labelstudio``, ``cvat``, ``classification``). By default the submitted and
        approved tasks, with their images; ``split`` such as ``{"train": 0.8, "val": 0.2}``."""
        options: dict[str, Any] = {
            "format": format,
            "only_approved": only_approved,
            "include_unlabeled": include_unlabeled,
            "include_predictions": include_predictions,
            "include_images": include_images,
            "seed": seed,
            "to_storage": to_storage,
        }
        if split:
            options["split"] = dict(split)
        return parse(
            Job, self._t.call("POST", f"/api/projects/{id_of(project)}/export/", json=options)
        )

    def download(
        self,
        project: Ref,
        target: str | os.PathLike[str],
        format: str = "yolo",
        *,
        timeout: float | None = None,
        progress: bool = False,
        **options: Any,
    ) -> Path:
        """Export, wait for the job and stream the zip to ``target``: one call. Options as in
        ``start``."""
        jobs = Jobs(self._t)
        job = jobs.wait(self.start(project, format, **options), timeout=timeout, progress=progress)
        return jobs.download(job, target, progress=progress)


class Imports(Resource):
    def dataset(self, project: Ref, archive: str | os.PathLike[str], format: str) -> Job:
        """Start importing a dataset zip (``yolo``, ``coco``, ``voc``, ``labelstudio``, ``cvat``
        …) into the project: streamed from disk; the job lands all of it or nothing."""
        return parse(
            Job,
            self._t.call(
                "POST",
                f"/api/projects/{id_of(project)}/import-dataset/",
                body=multipart([Path(archive)], "file", format=format),
                timeout=3600,
            ),
        )

    def url_list(self, project: Ref, listing: str | os.PathLike[str]) -> Job:
        """``urls`` from a file: a .txt with one address a line, a .csv with a ``url`` column or
        a .json list, read by the server as `defectlab import-urls` reads it."""
        return parse(
            Job,
            self._t.call(
                "POST",
                f"/api/projects/{id_of(project)}/import-urls/",
                body=multipart([Path(listing)], "file"),
            ),
        )

    def urls(self, project: Ref, urls: Sequence[str]) -> Job:
        """Start downloading images from these addresses into the project (through the server's
        guarded fetcher); ``client.jobs.items(job)`` says what became of each."""
        return parse(
            Job,
            self._t.call(
                "POST", f"/api/projects/{id_of(project)}/import-urls/", json={"urls": list(urls)}
            ),
        )
