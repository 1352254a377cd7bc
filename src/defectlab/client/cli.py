"""``defectlab remote``: the commands that work on a DefectLab server over its API, through the
SDK, from any machine (the other commands work on the local installation's database); and
``defectlab detect``, which calls the detection service with an organization API key."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from defectlab.client import Client
from defectlab.client.detection import DEFAULT_URL, DetectionClient
from defectlab.client.errors import ApiError
from defectlab.client.types import ImageResult

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = ["yolo", "yolo_seg", "coco", "voc", "labelstudio", "cvat", "classification"]


class Connection:
    """Where `remote`'s commands go, checked when one runs (so `--help` needs none of it)."""

    def __init__(self, url: str | None, token: str | None, language: str | None) -> None:
        self.url = url
        self.token = token
        self.language = language

    def client(self) -> Client:
        if not self.url:
            raise click.UsageError("Give the server's address: --url or DEFECTLAB_URL.")
        if not self.token:
            raise click.UsageError(
                "Give a personal API token: --token or DEFECTLAB_TOKEN (create one on your "
                "account page, or with POST /api/tokens/)."
            )
        return Client(self.url, self.token, language=self.language)


def _with_client(command: F) -> F:
    """Run the command with a client for the group's server as its first argument; server
    refusals, failed jobs and timeouts end it with their message (exit 1)."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        connection = click.get_current_context().find_object(Connection)
        assert connection is not None
        with connection.client() as client:
            try:
                return command(client, *args, **kwargs)
            except (ApiError, TimeoutError) as error:
                raise click.ClickException(str(error)) from None

    return run  # type: ignore[return-value]


@click.group()
@click.option(
    "--url",
    envvar="DEFECTLAB_URL",
    show_envvar=True,
    help="The server's address, e.g. http://127.0.0.1:8080.",
)
@click.option(
    "--token",
    envvar="DEFECTLAB_TOKEN",
    show_envvar=True,
    help="A personal API token (dl_…; create one on your account page or POST /api/tokens/).",
)
@click.option("--language", default=None, help="Language of the server's messages (en, zh-hans).")
@click.pass_context
def remote(ctx: click.Context, url: str | None, token: str | None, language: str | None) -> None:
    """Work on a DefectLab server over its API: upload, import, export (through the Python SDK,
    from any machine that can reach the server)."""
    ctx.obj = Connection(url, token, language)


@remote.command()
@click.option("--organization", type=int, default=None, help="Only this organization's.")
@_with_client
def projects(client: Client, organization: int | None) -> None:
    """List the projects you can see, with their task counts."""
    for project in client.projects.list(organization):
        counts = ", ".join(
            f"{status} {count}" for status, count in project.counts.items() if status != "total"
        )
        click.echo(
            f"{project.id}\t{project.name}\t(organization {project.organization}; "
            f"{project.counts.get('total', 0)} tasks: {counts})"
        )


@remote.command()
@click.argument("project_id", type=int)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--batch", default=50, show_default=True, help="Files per request (at most 100).")
@_with_client
def upload(client: Client, project_id: int, paths: tuple[Path, ...], batch: int) -> None:
    """Upload images (files, folders of them, zip archives) into a project, in batches."""
    result = client.tasks.upload(project_id, paths, batch_files=batch, progress=True)
    click.echo(f"Uploaded {result.created} images into project {project_id}.")


@remote.command(name="import-urls")
@click.argument("project_id", type=int)
@click.argument("listing", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_with_client
def import_urls(client: Client, project_id: int, listing: Path) -> None:
    """Have the server download the images listed in LISTING (.txt, .csv or .json)."""
    job = client.jobs.wait(client.imports.url_list(project_id, listing), progress=True)
    click.echo(f"Imported {job.result.get('imported', 0)}, failed {job.result.get('failed', 0)}.")
    for number, item in enumerate(client.jobs.items(job, state="failed")):
        if number == 20:
            click.echo(f"  … job {job.id} lists them all.", err=True)
            break
        click.echo(f"  line {item['index'] + 1}: {item['error']}", err=True)


@remote.command(name="import-dataset")
@click.argument("project_id", type=int)
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "format_name", required=True, type=click.Choice(FORMATS))
@_with_client
def import_dataset(client: Client, project_id: int, archive: Path, format_name: str) -> None:
    """Import a dataset zip with its annotations into a project."""
    job = client.jobs.wait(client.imports.dataset(project_id, archive, format_name), progress=True)
    summary = ", ".join(f"{name} {value}" for name, value in job.result.items() if _plain(value))
    click.echo(
        f"Imported {archive.name} into project {project_id}" + (f": {summary}." if summary else ".")
    )


@remote.command()
@click.argument("project_id", type=int)
@click.option(
    "--format", "format_name", default="yolo", show_default=True, type=click.Choice(FORMATS)
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    help="The zip's path, or a folder to save it in under the server's name.",
)
@click.option("--only-approved", is_flag=True, help="Only approved tasks.")
@click.option(
    "--include-unlabeled",
    is_flag=True,
    help="Also tasks nobody has submitted (by default only submitted or approved ones).",
)
@click.option("--predictions", is_flag=True, help="Include model predictions.")
@click.option("--no-images", is_flag=True, help="Annotations only, without the images.")
@click.option("--split", default="", help="Ratios, e.g. train=0.8,val=0.1,test=0.1.")
@click.option("--seed", default=0, show_default=True, help="Seed of the split.")
@_with_client
def export(
    client: Client,
    project_id: int,
    format_name: str,
    out: Path,
    only_approved: bool,
    include_unlabeled: bool,
    predictions: bool,
    no_images: bool,
    split: str,
    seed: int,
) -> None:
    """Export a project as a dataset zip and download it, showing progress."""
    try:
        ratios = {
            name.strip(): float(value)
            for name, _sep, value in (part.partition("=") for part in split.split(",") if part)
        }
    except ValueError:
        raise click.BadParameter(
            "write ratios as train=0.8,val=0.2", param_hint="--split"
        ) from None
    job = client.exports.start(
        project_id,
        format_name,
        only_approved=only_approved,
        include_unlabeled=include_unlabeled,
        include_predictions=predictions,
        include_images=not no_images,
        split=ratios,
        seed=seed,
    )
    job = client.jobs.wait(job, progress=True)
    for warning in job.result.get("warnings", []):
        click.echo(
            f"Left out task {warning['task']} ({warning['file_name']}): {warning['reason']}",
            err=True,
        )
    path = client.jobs.download(job, out, progress=True)
    click.echo(f"Wrote {path} ({job.result.get('items', 0)} images).")


def _plain(value: Any) -> bool:
    return isinstance(value, int | float | str) and not isinstance(value, bool)


@click.command()
@click.argument(
    "images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--model",
    required=True,
    help="NAME (its production alias), NAME:ALIAS or NAME:VERSION.",
)
@click.option(
    "--url",
    envvar="DEFECTLAB_INFERENCE_URL",
    show_envvar=True,
    default=DEFAULT_URL,
    show_default=True,
    help="The detection service's address.",
)
@click.option(
    "--key",
    envvar="DEFECTLAB_KEY",
    show_envvar=True,
    help="An organization API key (dlk_…).",
)
@click.option("--sign", is_flag=True, help="Sign each request with the key instead of sending it.")
@click.option("--conf", type=click.FloatRange(0, 1), default=None, help="Lowest score to keep.")
@click.option(
    "--iou", type=click.FloatRange(0, 1), default=None, help="IoU of non-max suppression."
)
@click.option("--max-det", type=click.IntRange(1), default=None, help="Most detections an image.")
@click.option("--classes", default=None, help="Only these classes, e.g. scratch,dent.")
@click.option("--tile", is_flag=True, help="Cut large images into tiles of the model's size.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line, one per image.")
@click.option("--language", default=None, help="Language of the service's messages (en, zh-hans).")
def detect(
    images: tuple[Path, ...],
    model: str,
    url: str,
    key: str | None,
    sign: bool,
    conf: float | None,
    iou: float | None,
    max_det: int | None,
    classes: str | None,
    tile: bool,
    as_json: bool,
    language: str | None,
) -> None:
    """Find defects in IMAGES with a model of the detection service (defectlab
    serve-inference): a table of file, class, score and box, or JSON lines. Exit 1 when an
    image could not be read or the service refused."""
    if not key:
        raise click.UsageError("Give an organization API key: --key or DEFECTLAB_KEY.")
    try:
        client = DetectionClient(url, key, sign=sign, language=language)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    with client:
        try:
            results = client.detect(
                list(images),
                model,
                conf=conf,
                iou=iou,
                max_det=max_det,
                classes=classes,
                tile=tile,
            )
        except ApiError as error:
            raise click.ClickException(str(error)) from None
    if as_json:
        for result in results:
            click.echo(json.dumps(_as_json(result), ensure_ascii=False))
    else:
        _table(results)
    if any(result.error for result in results):
        click.get_current_context().exit(1)


def _as_json(result: ImageResult) -> dict[str, Any]:
    line: dict[str, Any] = {"file": result.name, "index": result.index}
    if result.model is not None:
        model = result.model
        line["model"] = {
            "name": model.name,
            "version": model.version,
            "alias": model.alias,
            "sha256": model.sha256,
        }
    line.update({name: value for name, value in result.raw.items() if name != "index"})
    return line


def _table(results: list[ImageResult]) -> None:
    rows = [("file", "class", "score", "box")]
    for result in results:
        name = result.name or str(result.index)
        if result.error is not None:
            rows.append((name, "error", "", f"{result.error.code}: {result.error.message}"))
        elif not result.detections:
            rows.append((name, "-", "", "(nothing found)"))
        for found in result.detections:
            box = ", ".join(f"{value:g}" for value in found.box)
            rows.append((name, found.class_name, f"{found.score:.3f}", f"[{box}]"))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[3]]).rstrip())
