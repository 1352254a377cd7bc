"""The `defectlab` commands that run an installation: `check` (and `check --deploy`),
`backup`, `restore` and `rotate-secrets`. Loaded by `defectlab.cli` when they are run or listed."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def _django() -> None:
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "defectlab.settings")
    import django

    django.setup()


@click.command()
@click.option(
    "--deploy",
    is_flag=True,
    help="Also what a production deployment needs: broker, Redis and storage reachable, a strong "
    "secret key, public URLs that agree with CSRF origins and S3 public endpoints, HTTPS.",
)
def check(deploy: bool) -> None:
    """Check the configuration, the database and the data directory; explain any problem."""
    _django()
    from django.conf import settings

    from defectlab.operations.checks import findings_for

    problems, warnings = findings_for(deploy)
    for warning in warnings:
        click.echo(f"- warning: {warning}", err=True)
    if not problems:
        click.echo(
            f"Configuration is fine{' for a deployment' if deploy else ''}. Data in "
            f"{settings.DATA_DIR}; database {settings.DATABASES['default']['ENGINE']}."
        )
        return
    for problem in problems:
        click.echo(f"- {problem}", err=True)
    sys.exit(1)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def backup(file: Path) -> None:
    """Write the database and every stored file to FILE (a .tar, or .tar.gz), with a manifest
    of SHA-256 sums."""
    _django()
    from defectlab.errors import DefectLabError
    from defectlab.operations.backup import backup as write_backup

    try:
        summary = write_backup(file.resolve(), progress=lambda step: None)
    except DefectLabError as error:
        raise click.ClickException(error.message) from None
    click.echo(
        f"Wrote {file}: {summary.rows} rows in {len(summary.tables)} tables, "
        f"{summary.files} files ({summary.file_bytes / 1e6:.1f} MB)."
    )
    if summary.vanished:
        click.echo(f"{summary.vanished} files were deleted while the backup ran.", err=True)
    if summary.missing:
        _missing_warning(summary.missing, len(summary.missing))


def _missing_warning(keys: list[str], count: object) -> None:
    total = count if isinstance(count, int) else len(keys)
    shown = ", ".join(keys[:20]) + (f" and {total - 20} more" if total > 20 else "")
    click.echo(
        f"Warning: {total} files the rows name were deleted while the backup ran and are not in "
        f"the archive (their projects, models or exports were being deleted): {shown}",
        err=True,
    )


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--other-secret-key",
    is_flag=True,
    help="Restore although the archive was made with another DEFECTLAB_SECRET_KEY (the "
    "encrypted secrets in it must then be entered again). Needs --trust-archive too.",
)
@click.option(
    "--trust-archive",
    is_flag=True,
    help="With --other-secret-key: restore although the archive's HMAC cannot be checked "
    "(only your own backup: anyone who could write it could have added rows).",
)
def restore(file: Path, other_secret_key: bool, trust_archive: bool) -> None:
    """Restore FILE, made by `defectlab backup`, into this empty installation; the whole archive
    is verified before anything is written."""
    _django()
    from defectlab.errors import DefectLabError
    from defectlab.operations.restore import restore as read_backup

    steps = {
        "verify": "Verifying every member of the archive",
        "migrate": "Creating the database tables",
        "files": "Writing the stored files",
        "rows": "Loading the rows",
    }
    try:
        restored = read_backup(
            file,
            other_secret_key=other_secret_key,
            trust_archive=trust_archive,
            progress=lambda step: click.echo(steps[step]),
            warn=lambda text: click.echo(text, err=True),
        )
    except DefectLabError as error:
        raise click.ClickException(error.message) from None
    manifest = restored.manifest
    click.echo(
        f"Restored {restored.rows} rows in {len(restored.tables)} tables and {restored.files} "
        f"files from a backup of {manifest['created_at']} (DefectLab {manifest['app_version']}, "
        f"{manifest['database']['vendor']})."
    )
    if restored.missing:
        _missing_warning(restored.missing, manifest["files"].get("missing_count"))


@click.command("rotate-secrets")
def rotate_secrets() -> None:
    """Encrypt every stored secret (storage credentials, webhook secrets, model-backend
    passwords, API key signing keys) again with DEFECTLAB_SECRET_KEY, so the old keys can
    leave DEFECTLAB_SECRET_KEY_FALLBACKS."""
    _django()
    from django.conf import settings

    from defectlab.operations.rotation import rotate_secrets as rotate

    result = rotate()
    click.echo(f"Encrypted {result.rotated} stored secrets again with DEFECTLAB_SECRET_KEY.")
    if result.unreadable:
        click.echo(
            f"- {len(result.unreadable)} stored secrets cannot be decrypted with "
            "DEFECTLAB_SECRET_KEY or any of DEFECTLAB_SECRET_KEY_FALLBACKS "
            f"({len(settings.SECRET_KEY_FALLBACKS)}), left as they were: "
            f"{', '.join(result.unreadable)}. Put the key they were saved with in "
            "DEFECTLAB_SECRET_KEY_FALLBACKS and run this again, or enter them again.",
            err=True,
        )
        sys.exit(1)
    if settings.SECRET_KEY_FALLBACKS:
        click.echo(
            "Every stored secret now needs only DEFECTLAB_SECRET_KEY. Remove "
            "DEFECTLAB_SECRET_KEY_FALLBACKS once sessions and links made with the old keys may "
            "stop working."
        )
