"""The ``defectlab`` command: serve the app, migrate, create the first account, load the demo."""

from __future__ import annotations

import os
import secrets
import sys
from typing import Any

import click


def _django(server: bool = False) -> None:
    """Set Django up; ``server``: a server role, which logs to stdout (logs.RoleStream)."""
    from defectlab.logs import RoleStream

    RoleStream.server = server
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "defectlab.settings")
    import django

    django.setup()


class Commands(click.Group):
    """The command group. Commands named in ``lazy`` are imported when run or listed, not with
    the group: ``remote`` and ``detect`` bring the SDK and httpx, which ``serve`` and ``worker``
    have no use for; ``model`` lives with the model registry, ``key``, ``quota``, ``usage`` and
    ``provision`` with the detection service, the rest with the operations."""

    lazy = {
        "remote": "defectlab.client.cli:remote",
        "detect": "defectlab.client.cli:detect",
        "model": "defectlab.inference.commands:model",
        "key": "defectlab.serving.commands:key",
        "quota": "defectlab.serving.commands:quota",
        "usage": "defectlab.serving.commands:usage",
        "provision": "defectlab.serving.commands:provision",
        "tenant-manifests": "defectlab.operations.tenants:tenant_manifests",
        "check": "defectlab.operations.commands:check",
        "backup": "defectlab.operations.commands:backup",
        "restore": "defectlab.operations.commands:restore",
        "rotate-secrets": "defectlab.operations.commands:rotate_secrets",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            import importlib

            module, _sep, attribute = self.lazy[name].partition(":")
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, name)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="defectlab")
def main() -> None:
    """DefectLab: label defect images, review them, export datasets and serve detectors.

    Configuration comes from DEFECTLAB_* environment variables (see docs/configuration.md);
    `defectlab check` tells you if any of them is wrong.
    """


@main.command()
def migrate() -> None:
    """Create or update the database tables."""
    _django()
    from defectlab.operations.startup import run_migrations

    run_migrations()  # under a lock on PostgreSQL: replicas starting together take turns


@main.command()
@click.option("--email", default=None, help="[default: DEFECTLAB_ADMIN_EMAIL, admin@example.com]")
def createadmin(email: str | None) -> None:
    """Create the owner account (password from DEFECTLAB_ADMIN_PASSWORD, else generated and printed once)."""
    _django()
    from django.conf import settings

    email = email or settings.ADMIN_EMAIL
    from defectlab.tenancy.models import User, normalize_email

    if User.objects.filter(email=normalize_email(email)).exists():
        click.echo(f"The account {email} already exists; nothing changed.")
        return
    password = settings.ADMIN_PASSWORD or secrets.token_urlsafe(12)
    User.objects.create_superuser(email=email, password=password, name="Admin")
    click.echo(f"Created the owner account {email}.")
    if not settings.ADMIN_PASSWORD:
        click.secho(f"Its password is {password} — it is shown only this once.", bold=True)


@main.command()
@click.option("--email", default=None, help="Owner of the demo [default: DEFECTLAB_ADMIN_EMAIL].")
@click.option(
    "--images", default=50, show_default=True, help="How many synthetic images to generate."
)
def demo(email: str | None, images: int) -> None:
    """Create a demo organization and project with synthetic defect images (nothing downloaded)."""
    _django()
    from django.conf import settings

    from defectlab.errors import DefectLabError
    from defectlab.inference.demodetector import equip_demo
    from defectlab.labeling.demo import create_demo
    from defectlab.labeling.models import Prediction
    from defectlab.tenancy.models import User, normalize_email

    steps = {
        "check": "Checking the demo detector in the sandbox",
        "preannotate": "Pre-annotating the panels with it",
    }
    email = email or settings.ADMIN_EMAIL
    try:
        with click.progressbar(length=images, label="Drawing synthetic panels") as bar:
            project = create_demo(email, images=images, progress=lambda done: bar.update(1))
        owner = User.objects.get(email=normalize_email(email))
        model = equip_demo(project, owner, progress=lambda step: click.echo(steps[step]))
    except DefectLabError as error:
        raise click.ClickException(error.message) from None
    proposals = Prediction.objects.filter(task__project=project).count()
    click.echo(
        f"The demo project “{project.name}” has {project.task_count} tasks; "
        f"“{model.name}” pre-annotated {proposals} of them."
    )


def gunicorn_options(settings: Any) -> dict[str, Any]:
    """What `serve` sets in gunicorn besides the address, workers and logs, and why.

    - ``preload_app``: the app is loaded once, in the master, before the workers are forked, so
      the workers share its memory (the code, Django, the URL conf) copy-on-write instead of each
      loading its own copy; see ``load_application``.
    - ``max_requests`` (``DEFECTLAB_WEB_MAX_REQUESTS``, 0: never) with a jitter of a tenth: a
      worker is replaced after that many requests, so memory a big request left behind (a 100k
      task import) goes back to the system; the jitter keeps the workers from leaving together.
    - ``post_request`` (``DEFECTLAB_WEB_MAX_MEMORY_MB``, 0: never): the same at once after a
      request that left the worker above that much memory (``RetireAbove``).
    """
    from defectlab.operations.multiprocess import child_exit  # its metrics (share_metrics)

    options: dict[str, Any] = {"preload_app": True, "child_exit": child_exit}
    if settings.WEB_MAX_REQUESTS:
        options["max_requests"] = settings.WEB_MAX_REQUESTS
        options["max_requests_jitter"] = max(1, settings.WEB_MAX_REQUESTS // 10)
    if settings.WEB_MAX_MEMORY_MB:
        options["post_request"] = RetireAbove(settings.WEB_MAX_MEMORY_MB)
    return options


class RetireAbove:
    """gunicorn's ``post_request`` hook: a web worker that a request left above ``limit_mb``
    of memory (its PSS) finishes the requests it has and is replaced by a fresh one (gunicorn's
    own graceful path, as for ``max_requests``). The resident size, cheap to read, is looked at
    after every request; the PSS, which takes a walk over the process's pages, only when the
    resident size alone is past the limit (it always counts at least the PSS)."""

    def __init__(self, limit_mb: int) -> None:
        self.limit_mb = limit_mb

    def __call__(self, worker: Any, _request: Any, _environ: Any, _response: Any) -> None:
        from defectlab.jobs.worker import memory_mb, resident_mb

        if not worker.alive or resident_mb() <= self.limit_mb:
            return
        used = memory_mb()
        if used > self.limit_mb:
            worker.log.info(
                "web worker %s: %.0f MB after a request, above %s MB: replacing it",
                worker.pid, used, self.limit_mb,
            )  # fmt: skip
            worker.alive = False


def load_application() -> Any:
    """The WSGI app, loaded in gunicorn's master (``preload_app``) with every module a request
    needs, then frozen out of the garbage collector's sight: the collector writes to every object
    it scans, which would copy the shared pages into each worker one by one."""
    import gc

    from django.db import connections
    from django.urls import get_resolver

    from defectlab.wsgi import application

    get_resolver().url_patterns  # noqa: B018  (imports the URL conf and every view in it)

    connections.close_all()  # a forked worker must not share the master's connections
    gc.collect()
    gc.freeze()
    return application


@main.command()
@click.option("--host", default=None, help="Listen address [default: DEFECTLAB_HOST, 127.0.0.1].")
@click.option("--port", default=None, type=int, help="Port [default: DEFECTLAB_PORT, 8080].")
@click.option(
    "--workers",
    default=None,
    type=int,
    help="Worker processes [default: DEFECTLAB_WEB_WORKERS, 2].",
)
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the web app and API with gunicorn (a production server)."""
    from defectlab.operations.multiprocess import share_metrics

    share_metrics()  # one /metrics for all its processes: before Django, before any fork
    _django(server=True)
    from django.conf import settings

    from defectlab.operations.startup import announce, prepare_web

    if settings.PROBLEMS:
        for problem in settings.PROBLEMS:
            click.echo(f"- {problem}", err=True)
        sys.exit("Fix the configuration above first (`defectlab check`).")
    host = host or settings.HOST
    port = port or settings.PORT
    workers = workers or settings.WEB_WORKERS
    prepare_web()  # migrations (DEFECTLAB_MIGRATE_AT_START), static files
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", 4)
            self.cfg.set("timeout", 120)
            for name, value in gunicorn_options(settings).items():
                self.cfg.set(name, value)
            self.cfg.set("accesslog", "-")
            # gunicorn's own lines go through the same formatter as the app's (JSON by default).
            self.cfg.set(
                "logconfig_dict",
                settings.LOGGING
                | {
                    "loggers": {
                        "gunicorn.error": {
                            "handlers": ["stdout"],
                            "level": "INFO",
                            "propagate": False,
                        },
                        "gunicorn.access": {
                            "handlers": ["stdout"],
                            "level": "INFO",
                            "propagate": False,
                        },
                    }
                },
            )

        def load(self) -> Any:
            return load_application()

    from defectlab.jobs.supervisor import WorkerSupervisor

    supervisor = None
    import gc

    # What is loaded by now is shared with the processes forked from here (the job worker,
    # gunicorn's workers); the collector would write to it and so copy it into each of them.
    gc.collect()
    gc.freeze()
    if settings.WORKER_EMBEDDED:
        # The embedded default: one command runs everything, jobs included; a worker that
        # dies is started again. It is this process forked, sharing the Django loaded here.
        supervisor = WorkerSupervisor(target=embedded_worker)
        supervisor.start()
    announce(f"DefectLab is serving on http://{host}:{port}/")
    try:
        Server().run()
    finally:
        if supervisor is not None:
            supervisor.stop()


@main.command("serve-inference")
@click.option("--host", default=None, help="[default: DEFECTLAB_INFERENCE_HOST]")
@click.option("--port", default=None, type=int, help="[default: DEFECTLAB_INFERENCE_PORT]")
@click.option(
    "--upstream",
    default=None,
    help="Run as an edge mirror of the detection service at this address "
    "[default: DEFECTLAB_MIRROR_UPSTREAM].",
)
@click.option(
    "--key",
    default=None,
    help="The mirror's organization API key, with the `models` scope "
    "[default: DEFECTLAB_MIRROR_KEY].",
)
@click.option(
    "--follow",
    "follows",
    multiple=True,
    metavar="NAME:ALIAS",
    help="A model alias the mirror follows and serves; repeat for more "
    "[default: DEFECTLAB_MIRROR_FOLLOW].",
)
@click.option(
    "--sign/--no-sign",
    default=None,
    help="Sign the mirror's calls to the center instead of sending the key "
    "[default: DEFECTLAB_MIRROR_SIGN].",
)
def serve_inference(
    host: str | None,
    port: int | None,
    upstream: str | None,
    key: str | None,
    follows: tuple[str, ...],
    sign: bool | None,
) -> None:
    """Serve the detection API (/v1/detect) with uvicorn: one process; run more for more.

    With --upstream, --key and --follow it is an edge mirror (docs/edge.md): it serves the
    followed aliases' versions, kept under $DEFECTLAB_DATA_DIR/mirror/, without a database."""
    _django(server=True)
    from django.conf import settings

    if settings.PROBLEMS:
        for problem in settings.PROBLEMS:
            click.echo(f"- {problem}", err=True)
        sys.exit("Fix the configuration above first (`defectlab check`).")
    from defectlab.operations.startup import announce
    from defectlab.serving.server import run

    host = host or settings.INFERENCE_HOST
    port = port or settings.INFERENCE_PORT
    upstream = upstream or settings.MIRROR_UPSTREAM
    mirror = None
    if upstream or key or follows:
        mirror = _mirror(
            upstream,
            key or settings.MIRROR_KEY,
            list(follows) or settings.MIRROR_FOLLOW,
            settings.MIRROR_SIGN if sign is None else sign,
        )
        announce(
            f"An edge mirror of {upstream}, following {', '.join(follows or settings.MIRROR_FOLLOW)}"
        )
    announce(f"The detection service is serving on http://{host}:{port}/")
    run(host, port, mirror)


def _mirror(upstream: str | None, key: str, follows: list[str], sign: bool) -> Any:
    """The edge mirror `serve-inference` runs as, or an exit saying what is missing."""
    from django.conf import settings

    from defectlab.serving.mirror import Mirror, parse_follow
    from defectlab.serving.upstream import Upstream

    if not upstream or not key or not follows:
        sys.exit("An edge mirror needs --upstream, --key and at least one --follow NAME:ALIAS.")
    try:
        followed = [parse_follow(text) for text in follows]
        return Mirror(
            Upstream(upstream, key, sign=sign),
            key,
            followed,
            settings.DATA_DIR / "mirror",
            refresh_seconds=settings.MIRROR_REFRESH_SECONDS or settings.INFERENCE_REFRESH_SECONDS,
            backoff_max_seconds=settings.MIRROR_BACKOFF_MAX_SECONDS,
        )
    except ValueError as error:
        sys.exit(f"Cannot run as an edge mirror: {error}.")


def embedded_worker() -> int:
    """The job worker `serve` forks: run jobs until stopped; the exit code says whether it
    stopped to be recycled (jobs.supervisor.RECYCLE)."""
    from django.conf import settings
    from django.db import connections

    from defectlab.jobs.supervisor import RECYCLE
    from defectlab.jobs.worker import run_worker

    for connection in connections.all(initialized_only=True):
        # The parent's: never closed here (that would end the parent's session), only dropped.
        _INHERITED.append(connection.connection)
        connection.connection = None
    recycle = run_worker(settings.WORKER_THREADS, max_memory_mb=settings.WORKER_MAX_MEMORY_MB)
    return RECYCLE if recycle else 0


_INHERITED: list[Any] = []  # a forked worker's copies of its parent's database connections


@main.command()
@click.option(
    "--threads",
    default=None,
    type=int,
    help="Jobs run at a time [default: DEFECTLAB_WORKER_THREADS, 2].",
)
def worker(threads: int | None) -> None:
    """Run background jobs (imports, storage syncs, exports) until stopped."""
    _django(server=True)
    from django.conf import settings

    if settings.PROBLEMS:
        for problem in settings.PROBLEMS:
            click.echo(f"- {problem}", err=True)
        sys.exit("Fix the configuration above first (`defectlab check`).")
    from defectlab.jobs.supervisor import RECYCLE
    from defectlab.operations.probes import run_probed_worker  # with /healthz, /readyz, /metrics

    if run_probed_worker(threads or settings.WORKER_THREADS):
        sys.exit(RECYCLE)  # stopped to hand back its memory: start it again


def _project_and_user(project_id: int, email: str | None) -> tuple[Any, Any]:
    from django.conf import settings

    from defectlab.labeling.models import Project
    from defectlab.tenancy.models import User

    project = Project.objects.select_related("organization").filter(pk=project_id).first()
    if project is None:
        raise click.ClickException(f"There is no project {project_id}.")
    user = User.objects.filter(email=(email or settings.ADMIN_EMAIL).lower()).first()
    return project, user


def _run_with_progress(job: Any, label: str) -> Any:
    """Run ``job`` in this process (a thread does the work) and draw its progress bar."""
    import threading

    from defectlab.jobs.models import Job
    from defectlab.jobs.runner import run_job

    def work() -> None:
        from django.db import connections

        try:
            run_job(job.pk)
        finally:
            connections.close_all()  # this thread's own connections

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    shown = 0
    with click.progressbar(length=max(job.total or 1, 1), label=label, show_pos=True) as bar:
        while worker.is_alive():
            worker.join(0.3)
            current = Job.objects.get(pk=job.pk)
            if current.total and bar.length != current.total:
                bar.length = current.total
            bar.update(current.done - shown)
            shown = current.done
    job.refresh_from_db()
    if job.error:
        raise click.ClickException(job.error)
    return job


@main.command(name="import-urls")
@click.argument("project_id", type=int)
@click.argument("listing", type=click.Path(exists=True, dir_okay=False))
@click.option("--as", "email", default=None, help="Who starts it [default: DEFECTLAB_ADMIN_EMAIL].")
def import_urls(project_id: int, listing: str, email: str | None) -> None:
    """Download the images listed in LISTING (.txt, .csv or .json) into a project."""
    _django()
    from defectlab.errors import DefectLabError
    from defectlab.transfer.models import UrlImportItem
    from defectlab.transfer.urlimport import start_url_import, urls_from_file

    project, user = _project_and_user(project_id, email)
    with open(listing, "rb") as file:
        try:
            job = start_url_import(project, urls_from_file(listing, file.read()), user)
        except DefectLabError as error:
            raise click.ClickException(error.message) from None
    job = _run_with_progress(job, "Importing")
    click.echo(f"Imported {job.result.get('imported', 0)}, failed {job.result.get('failed', 0)}.")
    for item in UrlImportItem.objects.filter(job=job, state="failed").order_by("index")[:20]:
        click.echo(f"  line {item.index + 1}: {item.error}", err=True)


@main.command(name="recount-statistics")
@click.option("--project", "project_id", type=int, default=None, help="Only this project.")
@click.option(
    "--activity",
    is_flag=True,
    help="Also rebuild the daily activity (throughput, lead time, verdicts per person) from the "
    "saved versions, the audit trail's submissions and the reviews, replacing the project's "
    "activity rows. History the database no longer holds is not recounted: work on deleted "
    "tasks, submissions whose audit rows are gone (retention), people deleted since.",
)
def recount_statistics(project_id: int | None, activity: bool) -> None:
    """Rebuild the stored statistics counters from the annotations (a repair tool)."""
    _django()
    from defectlab.labeling.activity import rebuild_activity
    from defectlab.labeling.counters import recount
    from defectlab.labeling.models import Project

    projects = Project.objects.order_by("id")
    if project_id is not None:
        projects = projects.filter(pk=project_id)
        if not projects.exists():
            raise click.ClickException(f"No project {project_id}.")
    for project in projects:
        line = f"Project {project.pk} ({project.name}): {recount(project.pk):,} tasks counted"
        if activity:
            line += f", {rebuild_activity(project.pk):,} activity rows from history"
        click.echo(line + ".")


@main.command()
@click.argument("project_id", type=int)
@click.option("--format", "format_name", default="yolo", show_default=True, help="Dataset format.")
@click.option(
    "--out", type=click.Path(dir_okay=False, writable=True), help="Where to copy the zip."
)
@click.option("--only-approved", is_flag=True, help="Only approved tasks.")
@click.option(
    "--include-unlabeled",
    is_flag=True,
    help="Also tasks nobody has submitted (by default only submitted or approved ones).",
)
@click.option("--predictions", is_flag=True, help="Include model predictions.")
@click.option("--split", default="", help="Ratios, e.g. train=0.8,val=0.1,test=0.1.")
@click.option("--seed", default=0, show_default=True, help="Seed of the split.")
@click.option("--as", "email", default=None, help="Who starts it [default: DEFECTLAB_ADMIN_EMAIL].")
def export(
    project_id: int,
    format_name: str,
    out: str | None,
    only_approved: bool,
    include_unlabeled: bool,
    predictions: bool,
    split: str,
    seed: int,
    email: str | None,
) -> None:
    """Export a project as a dataset zip (with its images), showing progress."""
    _django()
    import shutil

    from defectlab.errors import DefectLabError
    from defectlab.media.storage import default_storage
    from defectlab.transfer.exports import start_export

    project, user = _project_and_user(project_id, email)
    try:
        ratios = {
            name.strip(): float(value)
            for name, _sep, value in (part.partition("=") for part in split.split(",") if part)
        }
        job = start_export(
            project,
            {
                "format": format_name,
                "only_approved": only_approved,
                "include_unlabeled": include_unlabeled,
                "include_predictions": predictions,
                "split": ratios,
                "seed": seed,
            },
            user,
        )
    except (DefectLabError, ValueError) as error:
        raise click.ClickException(getattr(error, "message", str(error))) from None
    job = _run_with_progress(job, "Exporting")
    key = job.result["key"]
    for warning in job.result.get("warnings", []):
        click.echo(
            f"Left out task {warning['task']} ({warning['file_name']}): {warning['reason']}",
            err=True,
        )
    if job.result.get("missing", 0) > len(job.result.get("warnings", [])):
        click.echo(
            f"{job.result['missing']} tasks left out in all; job {job.pk} lists them.", err=True
        )
    if out:
        with default_storage().open(key) as source, open(out, "wb") as target:
            shutil.copyfileobj(source, target, 1024 * 1024)
        click.echo(f"Wrote {out} ({job.result['items']} images).")
    else:
        click.echo(
            f"Stored as {key} ({job.result['items']} images); download it from job {job.pk}."
        )


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def manage(args: tuple[str, ...]) -> None:
    """Run a Django management command, e.g. `defectlab manage makemigrations --check`."""
    _django()
    from django.core.management import execute_from_command_line

    execute_from_command_line(["defectlab manage", *args])


if __name__ == "__main__":
    main()
