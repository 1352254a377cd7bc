"""Which tasks an export writes, under which names, in which splits: names unique by stem in
every format and the same in every export; only submitted or approved tasks unless unlabeled
ones are asked for; split sizes that match the ratios, also for a handful of images."""

from __future__ import annotations

import io
import itertools
import json
import os
import threading
import zipfile
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import IO

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from defectlab.datasets import FORMATS, SPLITS, ExportStats
from defectlab.datasets.archive import ZipSink
from defectlab.datasets.yolo import NO_VAL_COMMENT
from defectlab.geometry import Shape
from defectlab.jobs.models import JobState
from defectlab.labeling import workflow
from defectlab.labeling.models import Task, TaskStatus
from defectlab.tenancy.models import Role
from defectlab.transfer import exports
from defectlab.transfer.exports import Splitter, split_counts
from tests.conftest import Tenant
from tests.labeling.test_dataset_roundtrip import (
    LOADABLE,
    Drawn,
    download,
    empty_project,
    fill,
    image_bytes,
    manager,
    members,
    run_export,
    run_import,
    source_project,
)

RATIOS = st.dictionaries(
    st.sampled_from(SPLITS),
    st.floats(0, 100, allow_nan=False, allow_infinity=False),
    min_size=1,
).filter(lambda ratios: sum(ratios.values()) > 0)


def box() -> list[tuple[str, Shape]]:
    return [("dent", Shape.box(2, 2, 20, 20, label=0))]


def images(archive: bytes) -> list[str]:
    """The file names of the images in an export, in any format's layout."""
    return [
        PurePosixPath(name).name
        for name in members(archive)
        if PurePosixPath(name).suffix.lower() in (".png", ".jpg")
    ]


# --- names ----------------------------------------------------------------------------------------

SHARED_STEMS = [
    ("a.jpg", "JPEG"),
    ("a.png", "PNG"),
    ("IMG_0001.JPG", "JPEG"),  # the same camera name from two folders
    ("IMG_0001.JPG", "JPEG"),
    ("img_0001.png", "PNG"),  # and once more, in other case, which Windows would merge
    ("b.png", "PNG"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_images_sharing_a_stem_are_exported_under_names_unique_by_stem(
    tenant: Tenant, fmt: str
) -> None:
    project = source_project(tenant)
    drawn = [
        Drawn(name, image_bytes(40, 30, index, kind), box(), ["NG"])
        for index, (name, kind) in enumerate(SHARED_STEMS)
    ]
    tasks = fill(project, tenant.user(Role.MANAGER), drawn)
    client = manager(tenant)
    archive = download(client, run_export(client, project, format=fmt))
    written = images(archive)
    stems = [PurePosixPath(name).stem.casefold() for name in written]
    assert len(stems) == len(tasks) and len(set(stems)) == len(stems), written
    # Every task whose stem another shares gets its id; the others keep their name.
    assert sorted(written) == sorted(
        [
            f"{PurePosixPath(t.file_name).stem}-{t.pk}{PurePosixPath(t.file_name).suffix}"
            for t in tasks[:5]
        ]
        + ["b.png"]
    )
    # The same names in the next export, and when only some of those tasks are exported.
    assert members(download(client, run_export(client, project, format=fmt))) == members(archive)
    workflow.review(tasks[1], tenant.user(Role.REVIEWER), verdict="approve")
    approved = download(client, run_export(client, project, format=fmt, only_approved=True))
    assert images(approved) == [f"a-{tasks[1].pk}.png"]
    if fmt in LOADABLE:
        target = empty_project(tenant)
        job = run_import(client, target, fmt, archive)
        assert job.state == JobState.SUCCEEDED, job.error
        assert sorted(
            Task.objects.filter(project=target).values_list("file_name", flat=True)
        ) == sorted(written)


# --- which tasks ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_by_default_only_submitted_and_approved_tasks_are_exported(tenant: Tenant) -> None:
    project = source_project(tenant)
    annotator, reviewer = tenant.user(Role.MANAGER), tenant.user(Role.REVIEWER)
    drawn = [
        Drawn("never-opened.png", image_bytes(40, 30, 1), annotate=False),
        Drawn("submitted.png", image_bytes(40, 30, 2), box()),
        Drawn("clean-part.png", image_bytes(40, 30, 3)),  # submitted without shapes ...
        Drawn("approved.png", image_bytes(40, 30, 4), box()),
        Drawn("rejected.png", image_bytes(40, 30, 5), box()),
        Drawn("half-done.png", image_bytes(40, 30, 6), annotate=False),
    ]
    tasks = {task.file_name: task for task in fill(project, annotator, drawn)}
    workflow.review(tasks["clean-part.png"], reviewer, verdict="approve")  # ... a true negative
    workflow.review(tasks["approved.png"], reviewer, verdict="approve")
    workflow.review(tasks["rejected.png"], reviewer, verdict="reject", comment="redo")
    workflow.save_annotation(
        tasks["half-done.png"], annotator, base_version=None, shapes=[], submit=False
    )
    assert Task.objects.get(file_name="half-done.png").status == TaskStatus.IN_PROGRESS
    client = manager(tenant)

    job = run_export(client, project, format="yolo")
    archive = download(client, job)
    assert sorted(images(archive)) == ["approved.png", "clean-part.png", "submitted.png"]
    assert job.result["items"] == job.total == 3
    assert job.params["include_unlabeled"] is False
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert opened.read("labels/train/clean-part.txt") == b""  # "no defect", as reviewed
        assert opened.read("labels/train/submitted.txt").count(b"\n") == 1

    everything = run_export(client, project, format="yolo", include_unlabeled=True)
    assert sorted(images(download(client, everything))) == sorted(tasks)
    only_approved = run_export(client, project, format="coco", only_approved=True)
    assert sorted(images(download(client, only_approved))) == ["approved.png", "clean-part.png"]

    both = client.post(
        f"/api/projects/{project.pk}/export/",
        {"format": "yolo", "only_approved": True, "include_unlabeled": True},
        format="json",
    )
    assert both.status_code == 400
    assert "not both" in both.json()["error"]["message"]


@pytest.mark.django_db
def test_tasks_are_read_in_one_query_and_written_in_id_order_over_many_chunks(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from defectlab.transfer import exports

    monkeypatch.setattr(exports, "CHUNK", 2)  # 5 tasks: three chunks of annotations
    project = source_project(tenant)
    drawn = [
        Drawn(f"t{index}.png", image_bytes(40, 30, index), box() if index % 2 else [])
        for index in range(5)
    ]
    tasks = fill(project, tenant.user(Role.MANAGER), drawn)
    client = manager(tenant)
    with CaptureQueriesContext(connection) as queries:
        job = run_export(client, project, format="labelstudio", include_images=False)
    task_reads = [
        query["sql"]
        for query in queries.captured_queries
        if 'FROM "labeling_task"' in query["sql"] and '"labeling_task"."image"' in query["sql"]
    ]
    assert len(task_reads) == 1, task_reads  # not a query a chunk
    with zipfile.ZipFile(io.BytesIO(download(client, job))) as opened:
        written = json.loads(opened.read("tasks.json"))
    assert [task["id"] for task in written] == [task.pk for task in tasks]
    assert [len(task["annotations"][0]["result"]) for task in written] == [0, 1, 0, 1, 0]
    assert job.result["items"] == 5


# --- splits ---------------------------------------------------------------------------------------


def yolo_splits(archive: bytes) -> list[str]:
    return sorted(
        PurePosixPath(name).parts[1] for name in members(archive) if name.startswith("images/")
    )


def data_yaml(archive: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return opened.read("data.yaml").decode()


@pytest.mark.django_db
def test_split_sizes_match_the_ratios_in_a_small_project(tenant: Tenant) -> None:
    project = source_project(tenant)
    drawn = [Drawn(f"part-{index}.png", image_bytes(40, 30, index), box()) for index in range(3)]
    fill(project, tenant.user(Role.MANAGER), drawn)
    client = manager(tenant)
    for seed in range(6):
        split = {"train": 0.67, "val": 0.33}
        archive = download(
            client, run_export(client, project, format="yolo", split=split, seed=seed)
        )
        assert yolo_splits(archive) == ["train", "train", "val"], seed
        text = data_yaml(archive)
        assert NO_VAL_COMMENT not in text and yaml.safe_load(text)["val"] == "images/val"
    # Without a split, val = train, and data.yaml says so.
    text = data_yaml(download(client, run_export(client, project, format="yolo")))
    assert text.startswith(NO_VAL_COMMENT + "\n") and "val = train" in NO_VAL_COMMENT
    assert yaml.safe_load(text)["val"] == yaml.safe_load(text)["train"] == "images/train"


@given(total=st.integers(0, 10_000), ratios=RATIOS)
def test_split_counts_add_up_and_stay_within_one_of_each_share(
    total: int, ratios: dict[str, float]
) -> None:
    counts = split_counts(total, ratios)
    assert sum(counts.values()) == total
    whole = sum(Fraction(ratio) for ratio in ratios.values())
    for name in SPLITS:
        share = total * Fraction(ratios.get(name, 0)) / whole
        assert abs(counts.get(name, 0) - share) < 1, (name, counts, share)


@given(
    ids=st.sets(st.integers(1, 2**40), max_size=60),
    ratios=RATIOS,
    seed=st.integers(-(2**31), 2**31),
)
def test_the_splitter_cuts_the_tasks_it_is_given_to_those_counts(
    ids: set[int], ratios: dict[str, float], seed: int
) -> None:
    splitter = Splitter(sorted(ids), ratios, seed)
    drawn = [splitter(task_id) for task_id in ids]
    wanted = split_counts(len(ids), ratios)
    assert {name: drawn.count(name) for name in wanted} == wanted
    assert set(drawn) <= set(wanted)
    # The same tasks and seed give the same splits, whatever order they come in.
    again = Splitter(sorted(ids, reverse=True), ratios, seed)
    assert [again(task_id) for task_id in ids] == drawn


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="needs posix_fadvise")
def test_the_partial_archive_is_written_back_while_the_export_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small steps, so a few hundred KB of members start the writeback several times. The hint
    # itself is the real call; the wrapper only records where and from which thread it came.
    monkeypatch.setattr(exports, "WRITEBACK_EVERY", 64 * 1024)
    monkeypatch.setattr(exports, "WRITEBACK_LAG", 16 * 1024)
    calls: list[tuple[int, int, str]] = []

    def recorded(fd: int, offset: int, length: int, advice: int) -> None:
        calls.append((offset, length, threading.current_thread().name))
        os.posix_fadvise(fd, offset, length, advice)

    monkeypatch.setattr(exports, "advise", recorded)
    contents = {f"images/train/{k}.jpg": os.urandom(50_000 + 997 * k) for k in range(12)}

    def write(out: IO[bytes]) -> ExportStats:
        sink = ZipSink(out)
        for name, data in contents.items():
            sink.copy_image(name, lambda data=data: io.BytesIO(data))
            sink.write_small(name.replace("images", "labels") + ".txt", f"0 {name}\n")
        return ExportStats(bytes=sink.close())

    target = tmp_path / "exports" / "job-1.zip"
    stats = exports._write_local(target, write)
    assert sorted(path.name for path in target.parent.iterdir()) == ["job-1.zip"]
    with zipfile.ZipFile(target) as archive:
        assert archive.testzip() is None
        for name, data in contents.items():
            assert archive.read(name) == data
    size = target.stat().st_size
    assert stats.bytes == size
    # Ranges one after the other from the start, never the last WRITEBACK_LAG bytes (zipfile
    # goes back there to fill in sizes), each started by the helper thread.
    assert len(calls) >= 4
    assert calls[0][0] == 0
    assert all(a[0] + a[1] == b[0] for a, b in itertools.pairwise(calls))
    assert calls[-1][0] + calls[-1][1] <= size - 16 * 1024
    assert {thread for _offset, _length, thread in calls} == {"export-writeback"}
