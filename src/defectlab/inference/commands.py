"""``defectlab model``: the model registry on the local installation (the `defectlab` command
loads this group by name when it runs). The commands call the registry's services as the API
does; an upload runs its check here and says how it ended."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "defectlab.settings")
    import django

    django.setup()


@click.group()
def model() -> None:
    """The organization's detection models: upload versions, list them, move aliases."""


def _organization(value: str) -> Any:
    from defectlab.tenancy.models import Organization

    found = Organization.objects.filter(pk=int(value)).first() if value.isdigit() else None
    found = found or Organization.objects.filter(name=value).first()
    if found is None:
        raise click.ClickException(f"There is no organization {value!r}.")
    return found


def _actor(organization: Any, email: str | None) -> Any:
    """The person named (or DEFECTLAB_ADMIN_EMAIL) if a member of ``organization``; None (the
    operator, acting on the installation) otherwise."""
    from django.conf import settings

    from defectlab.tenancy.models import User
    from defectlab.tenancy.services import role_in

    user = User.objects.filter(email=(email or settings.ADMIN_EMAIL).lower()).first()
    if user is not None and role_in(user, organization.pk) is not None:
        return user
    if email:
        raise click.ClickException(f"{email} is not a member of {organization.name}.")
    return None


def _model(value: str, organization: str | None) -> Any:
    from defectlab.inference.models import DetectionModel

    rows = DetectionModel.objects.select_related("organization")
    if organization:
        rows = rows.filter(organization=_organization(organization))
    found = list(rows.filter(pk=int(value))) if value.isdigit() else []
    found = found or list(rows.filter(name=value)[:2])
    if not found:
        raise click.ClickException(f"There is no model {value!r}.")
    if len(found) > 1:
        raise click.ClickException(f"Several organizations have a model {value!r}: name one.")
    return found[0]


def _described(version: Any) -> str:
    names = ", ".join(version.names[:8]) + (", …" if len(version.names) > 8 else "")
    return (
        f"{version.layout}, input {version.input_width}×{version.input_height}, "
        f"{len(version.names)} classes ({names}), sha256 {version.sha256[:12]}"
    )


@model.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--organization", required=True, help="The organization (its id or name).")
@click.option("--name", required=True, help="The model's name (made if it has none yet).")
@click.option("--notes", default="", help="What this version is.")
@click.option("--names", default="", help="Class names, comma-separated, for a model without.")
@click.option("--input-size", type=int, default=None, help="Side for a dynamic-size model.")
@click.option("--conf", type=float, default=None, help="Default confidence threshold.")
@click.option("--iou", type=float, default=None, help="Default NMS IoU threshold.")
@click.option("--max-det", type=int, default=None, help="Default most detections per image.")
@click.option("--as", "email", default=None, help="Who uploads [default: DEFECTLAB_ADMIN_EMAIL].")
def upload(file: Path, organization: str, name: str, email: str | None, **options: Any) -> None:
    """Upload FILE (.onnx) as a new version of a model, check it in the sandbox, say how it
    ended (exit status 1 when the file is refused or its check fails)."""
    _django()
    from django.db import transaction

    from defectlab.errors import DefectLabError
    from defectlab.inference import registry
    from defectlab.inference.models import DetectionModel, VersionState
    from defectlab.jobs.runner import run_job
    from defectlab.textlists import split_items

    org = _organization(organization)
    actor = _actor(org, email)
    try:
        with transaction.atomic():  # a refused file leaves no new, empty model behind
            found = DetectionModel.objects.filter(organization=org, name=name.strip()).first()
            target = found or registry.create_model(org, actor, name=name)
            version = registry.upload_version(
                target,
                actor,
                file.read_bytes(),
                file_name=file.name,
                notes=options["notes"],
                names=split_items(options["names"]) or None,
                input_size=options["input_size"],
                conf=options["conf"],
                iou=options["iou"],
                max_det=options["max_det"],
            )
    except DefectLabError as error:
        raise click.ClickException(f"{error.message} ({error.code})") from None
    click.echo(f"Uploaded version {version.number} of {target.name}; checking it in the sandbox…")
    run_job(version.job_id or 0)
    version.refresh_from_db()
    if version.state != VersionState.READY:
        raise click.ClickException(
            f"Version {version.number} failed its check ({version.error_code}): {version.error}"
        )
    click.echo(f"Version {version.number} of {target.name} is ready: {_described(version)}.")


@model.command(name="list")
@click.option("--organization", default=None, help="Only this organization's (id or name).")
def list_models(organization: str | None) -> None:
    """The models with their versions (state, layout, classes) and aliases."""
    _django()
    from defectlab.inference.models import DetectionModel

    rows = DetectionModel.objects.select_related("organization").order_by("organization_id", "id")
    if organization:
        rows = rows.filter(organization=_organization(organization))
    shown = 0
    for entry in rows.prefetch_related("versions", "aliases__version"):
        shown += 1
        aliases = ", ".join(f"{a.name}→v{a.version.number}" for a in entry.aliases.all())
        click.echo(
            f"{entry.pk}  {entry.name}  ({entry.organization.name})"
            + (f"  aliases: {aliases}" if aliases else "")
        )
        for version in entry.versions.all():
            detail = _described(version) if version.state != "failed" else version.error
            click.echo(f"    v{version.number}  {version.state}  {detail}")
    if not shown:
        click.echo("No models.")


@model.command()
@click.argument("model_name", metavar="MODEL")
@click.argument("alias")
@click.argument("version", type=int)
@click.option("--organization", default=None, help="The model's organization, if names clash.")
@click.option("--as", "email", default=None, help="Who moves it [default: DEFECTLAB_ADMIN_EMAIL].")
def alias(
    model_name: str, alias: str, version: int, organization: str | None, email: str | None
) -> None:
    """Point ALIAS (production, staging, …) of MODEL (id or name) at its ready VERSION."""
    _django()
    from defectlab.errors import DefectLabError
    from defectlab.inference import registry

    target = _model(model_name, organization)
    try:
        moved = registry.move_alias(target, _actor(target.organization, email), alias, version)
    except DefectLabError as error:
        raise click.ClickException(f"{error.message} ({error.code})") from None
    click.echo(f"{target.name}: {moved.name} → version {moved.version.number}.")


# ---------------------------------------------------------------------------- backends


@model.command()
@click.argument("project", type=int)
@click.argument("name")
@click.option("--version", "number", type=int, default=None, help="A version number.")
@click.option("--alias", default=None, help="An alias [default: production].")
@click.option(
    "--scope",
    type=click.Choice(["all", "unlabeled"]),
    default="all",
    show_default=True,
    help="Which tasks.",
)
@click.option("--tile/--no-tile", default=None, help="Tile the images [default: the project's].")
@click.option("--as", "email", default=None, help="Who starts it [default: DEFECTLAB_ADMIN_EMAIL].")
def preannotate(
    project: int,
    name: str,
    number: int | None,
    alias: str | None,
    scope: str,
    tile: bool | None,
    email: str | None,
) -> None:
    """Pre-annotate PROJECT's tasks with a version of model NAME (id or name), running the job
    here and saying what it did (exit status 1 when it fails)."""
    _django()
    from django.db import transaction

    from defectlab.errors import DefectLabError
    from defectlab.inference.preannotation import start_preannotation
    from defectlab.jobs.models import Job, JobState
    from defectlab.jobs.runner import run_job
    from defectlab.labeling.models import Project

    found = Project.objects.select_related("organization").filter(pk=project).first()
    if found is None:
        raise click.ClickException(f"There is no project {project}.")
    target = _model(name, str(found.organization_id))
    if number is None and alias is None:
        alias = "production"
    try:
        with transaction.atomic():
            job = start_preannotation(
                found,
                _actor(found.organization, email),
                model=target,
                version=number,
                alias=alias,
                scope=scope,
                tile=tile,
            )
    except DefectLabError as error:
        raise click.ClickException(f"{error.message} ({error.code})") from None
    click.echo(f"Pre-annotating {found.name} with {target.name} (job {job.pk})…")
    run_job(job.pk)
    job = Job.objects.get(pk=job.pk)
    if job.state != JobState.SUCCEEDED:
        raise click.ClickException(f"The job ended {job.state}: {job.error}")
    result = job.result
    click.echo(
        f"Version {result['version']}: {result['predictions']} tasks pre-annotated, "
        f"{result['shapes']} proposals, {result['decided_kept']} already decided kept as they "
        f"were, {result['failed']} failed."
    )
    for failure in result["errors"]:
        click.echo(f"  task {failure['task']}: {failure['error']}")


@model.group()
def backend() -> None:
    """External model backends (servers speaking Label Studio's ML-backend protocol)."""


def _backend(value: str, organization: str | None) -> Any:
    from defectlab.inference.models import MLBackend

    rows = MLBackend.objects.select_related("organization")
    if organization:
        rows = rows.filter(organization=_organization(organization))
    found = list(rows.filter(pk=int(value))) if value.isdigit() else []
    found = found or list(rows.filter(name=value)[:2])
    if not found:
        raise click.ClickException(f"There is no model backend {value!r}.")
    if len(found) > 1:
        raise click.ClickException(f"Several organizations have a backend {value!r}: name one.")
    return found[0]


@backend.command(name="add")
@click.argument("name")
@click.argument("url")
@click.option("--organization", required=True, help="The organization (its id or name).")
@click.option("--auth", default="", help="Authorization header value (Basic …, Token …).")
@click.option("--media-url", default="", help="This server's address as the backend sees it.")
@click.option("--as", "email", default=None, help="Who adds it [default: DEFECTLAB_ADMIN_EMAIL].")
def backend_add(
    name: str, url: str, organization: str, auth: str, media_url: str, email: str | None
) -> None:
    """Add a backend NAME at URL (nothing is sent to it until it is checked)."""
    _django()
    from defectlab.errors import DefectLabError
    from defectlab.inference import backends

    org = _organization(organization)
    try:
        added = backends.create_backend(
            org, _actor(org, email), name=name, url=url, auth=auth, media_base_url=media_url
        )
    except DefectLabError as error:
        raise click.ClickException(f"{error.message} ({error.code})") from None
    click.echo(f"Added model backend {added.pk} {added.name} at {added.url}.")


@backend.command(name="list")
@click.option("--organization", default=None, help="Only this organization's (id or name).")
def backend_list(organization: str | None) -> None:
    """The backends with their last check."""
    _django()
    from defectlab.inference.models import MLBackend

    rows = MLBackend.objects.select_related("organization").order_by("organization_id", "id")
    if organization:
        rows = rows.filter(organization=_organization(organization))
    shown = 0
    for entry in rows:
        shown += 1
        version = f"  model {entry.model_version}" if entry.model_version else ""
        click.echo(
            f"{entry.pk}  {entry.name}  ({entry.organization.name})  {entry.url}  "
            f"{entry.health}{version}"
        )
        if entry.health_message:
            click.echo(f"    {entry.health_message}")
    if not shown:
        click.echo("No model backends.")


@backend.command(name="check")
@click.argument("name", metavar="BACKEND")
@click.option("--organization", default=None, help="The backend's organization, if names clash.")
@click.option("--project", type=int, default=None, help="Also /setup with this project's labels.")
def backend_check(name: str, organization: str | None, project: int | None) -> None:
    """Ask BACKEND (id or name) for /health (and /setup for --project); exit status 1 when it
    is down or refused."""
    _django()
    from defectlab.inference import backends
    from defectlab.labeling.models import Project

    target = _backend(name, organization)
    chosen = None
    if project is not None:
        chosen = Project.objects.filter(pk=project, organization_id=target.organization_id).first()
        if chosen is None:
            raise click.ClickException(f"{target.organization.name} has no project {project}.")
    health = backends.check(target, project=chosen)
    if health.problem is not None:
        raise click.ClickException(f"{health.problem.message} ({health.problem.code})")
    version = f", model version {health.model_version}" if health.model_version else ""
    click.echo(f"{target.name} is up{version}.")
