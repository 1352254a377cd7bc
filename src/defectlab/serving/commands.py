"""``defectlab key``, ``quota``, ``usage`` and ``provision``: the detection service's control
plane on the local installation (the `defectlab` command loads these by name when it runs).
They act as the platform operator (no actor in the audit trail), through the same services as
the API and the pages. ORG is an organization's id or exact name."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import click

NO_LIMIT = "none"
LIMITS = {  # option → Quota field
    "rpm": "requests_per_minute",
    "images_per_day": "images_per_day",
    "concurrent": "concurrent_requests",
    "max_image_mb": "max_image_mb",
}


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "defectlab.settings")
    import django

    django.setup()


def _organization(value: str) -> Any:
    from defectlab.inference.commands import _organization as find

    return find(value)


class Limit(click.ParamType):
    """A whole number from 1, or ``none`` for no limit."""

    name = "N|none"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, int) or value == NO_LIMIT:
            return value
        text = str(value).strip().lower()
        if text == NO_LIMIT:
            return NO_LIMIT
        if text.isdigit() and int(text) >= 1:
            return int(text)
        self.fail(f"{value!r} is neither a whole number from 1 nor 'none'.", param, ctx)


def limit_options(function: Any) -> Any:
    """--rpm, --images-per-day, --concurrent, --max-image-mb (N or none) and --weight N."""
    options = [
        click.option("--rpm", type=Limit(), default=None, help="Requests per minute."),
        click.option("--images-per-day", type=Limit(), default=None, help="Images per UTC day."),
        click.option(
            "--concurrent", type=Limit(), default=None, help="Requests in progress at once."
        ),
        click.option("--max-image-mb", type=Limit(), default=None, help="Largest image, MB."),
        click.option(
            "--weight", type=click.IntRange(1, 100), default=None, help="Share (1 to 100)."
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _quota_values(options: dict[str, Any]) -> dict[str, Any]:
    values = {
        field: None if options[name] == NO_LIMIT else options[name]
        for name, field in LIMITS.items()
        if options.get(name) is not None
    }
    if options.get("weight") is not None:
        values["weight"] = options["weight"]
    return values


def _shown(value: int | None) -> str:
    return "no limit" if value is None else str(value)


def _echo_limits(organization: Any, limits: Any) -> None:
    source = "set by the operator" if limits.custom else "the installation's defaults"
    click.echo(f"Quota of {organization.name} ({organization.pk}), {source}:")
    click.echo(f"  requests per minute   {_shown(limits.requests_per_minute)}")
    click.echo(f"  images per day (UTC)  {_shown(limits.images_per_day)}")
    click.echo(f"  concurrent requests   {_shown(limits.concurrent_requests)}")
    click.echo(f"  largest image (MB)    {_shown(limits.max_image_mb)}")
    click.echo(f"  weight                {limits.weight}")


def _echo_key(key: Any, text: str) -> None:
    click.echo(f"Made the key {key.name} (dlk_{key.key_id}, scopes {', '.join(key.scopes)}).")
    click.secho(f"Its text is {text} — it is shown only this once.", bold=True)


# ---------------------------------------------------------------------------- keys


@click.group()
def key() -> None:
    """An organization's API keys for the detection service: make, list, revoke."""


@key.command(name="create")
@click.argument("organization", metavar="ORG")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(["detect", "models"]),
    default=("detect",),
    show_default=True,
    help="What the key may do (repeat for both).",
)
@click.option("--signed-only", is_flag=True, help="Refuse requests that are not signed.")
def key_create(organization: str, name: str, scopes: tuple[str, ...], signed_only: bool) -> None:
    """Make a key NAME for ORG and print its text (once: only its hash is kept)."""
    _django()
    from defectlab.errors import DefectLabError
    from defectlab.serving.keys import create_key

    org = _organization(organization)
    try:
        made, text = create_key(org, None, name, scopes, signed_only=signed_only)
    except DefectLabError as error:
        raise click.ClickException(f"{error.message} ({error.code})") from None
    _echo_key(made, text)


@key.command(name="list")
@click.argument("organization", metavar="ORG")
def key_list(organization: str) -> None:
    """ORG's keys, newest first, with their scopes, last use and whether revoked."""
    _django()
    from defectlab.serving.keys import keys_of

    shown = 0
    for row in keys_of(_organization(organization)).select_related("created_by"):
        shown += 1
        state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
        used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never"
        signed = ", signed only" if row.signed_only else ""
        click.echo(
            f"dlk_{row.key_id}  {row.name}  [{', '.join(row.scopes)}{signed}]  {state}  "
            f"last used {used}"
        )
    if not shown:
        click.echo("No keys.")


@key.command(name="revoke")
@click.argument("organization", metavar="ORG")
@click.argument("key_id")
def key_revoke(organization: str, key_id: str) -> None:
    """Revoke ORG's key KEY_ID (dlk_… or its id): every replica refuses it within
    DEFECTLAB_INFERENCE_REFRESH_SECONDS."""
    _django()
    from defectlab.serving.keys import keys_of, revoke_key

    org = _organization(organization)
    wanted = key_id.strip().removeprefix("dlk_").split("_", 1)[0]
    found = keys_of(org).filter(key_id=wanted).first()
    if found is None:
        raise click.ClickException(f"{org.name} has no key {key_id!r}.")
    if found.revoked_at is not None:
        click.echo(f"The key {found.name} (dlk_{found.key_id}) was revoked already.")
        return
    revoke_key(found, None)
    click.echo(f"Revoked the key {found.name} (dlk_{found.key_id}).")


# ---------------------------------------------------------------------------- quotas


@click.group()
def quota() -> None:
    """An organization's limits on the detection service (the operator sets them)."""


@quota.command(name="show")
@click.argument("organization", metavar="ORG")
def quota_show(organization: str) -> None:
    """ORG's limits as they stand."""
    _django()
    from defectlab.serving.quotas import limits_of

    org = _organization(organization)
    _echo_limits(org, limits_of(org.pk))


@quota.command(name="set")
@click.argument("organization", metavar="ORG")
@limit_options
def quota_set(organization: str, **options: Any) -> None:
    """Change ORG's limits: the options given (`none` lifts a limit); the rest keep theirs."""
    _django()
    from defectlab.errors import DefectLabError
    from defectlab.serving.quotas import set_quota

    org = _organization(organization)
    values = _quota_values(options)
    if not values:
        raise click.UsageError("Give at least one limit to change (see --help).")
    try:
        limits = set_quota(org, None, **values)
    except DefectLabError as error:
        raise click.ClickException(f"{error.message} ({error.code})") from None
    _echo_limits(org, limits)


# ---------------------------------------------------------------------------- usage


@click.command()
@click.argument("organization", metavar="ORG")
@click.option("--days", type=click.IntRange(1, 366), default=30, show_default=True)
@click.option("--csv", "as_csv", is_flag=True, help="The billing CSV (day × key × version).")
def usage(organization: str, days: int, as_csv: bool) -> None:
    """ORG's use of the detection service per UTC day over the last DAYS days, with totals
    (or, with --csv, the billing CSV on standard output)."""
    _django()
    from defectlab.serving import usage as metering

    org = _organization(organization)
    span = metering.span_of(days=days)
    if as_csv:
        click.echo(metering.billing_csv(org.pk, span), nl=False)
        return
    found = metering.usage_of(org.pk, span)
    click.echo(f"Usage of {org.name} ({org.pk}), {span.first} to {span.last} (UTC):")
    click.echo(f"{'date':<12}{'calls':>10}{'images':>10}{'detections':>12}{'errors':>8}")
    for row in found.rows:
        if row.counts.calls:
            counts = row.counts
            click.echo(
                f"{row.date.isoformat():<12}{counts.calls:>10}{counts.images:>10}"
                f"{counts.detections:>12}{counts.errors:>8}"
            )
    total = found.totals
    click.echo(
        f"{'total':<12}{total.calls:>10}{total.images:>10}{total.detections:>12}{total.errors:>8}"
    )


# ---------------------------------------------------------------------------- provision


@click.command()
@click.argument("name")
@click.option("--owner", "email", required=True, help="The owner's e-mail (made if new).")
@limit_options
@click.option(
    "--model",
    "model_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A first model version (.onnx), checked and named production.",
)
@click.option("--model-name", default=None, help="The model's name (with --model).")
def provision(
    name: str, email: str, model_file: Path | None, model_name: str | None, **limits: Any
) -> None:
    """Make an organization NAME ready for the detection service in one go: the organization
    (owned by --owner, an account made if new, its password printed once), its quota, a detect
    key (printed once), and with --model a first model version, checked and named production."""
    _django()
    from defectlab.errors import DefectLabError

    if model_file is not None and not (model_name or "").strip():
        raise click.UsageError("--model needs --model-name.")
    try:
        made = _provision(name, email, _quota_values(limits), model_file, model_name or "")
    except DefectLabError as error:
        raise click.ClickException(f"{error.message} ({error.code})") from None
    organization, password, key_text, version = made
    click.echo(f"Made the organization {organization.name} ({organization.pk}).")
    if password:
        click.secho(
            f"Made the account {email}; its password is {password} — shown only this once.",
            bold=True,
        )
    _echo_limits(organization, _limits(organization))
    click.secho(f"Its detect key is {key_text} — shown only this once.", bold=True)
    if version is not None:
        _check(version)


def _limits(organization: Any) -> Any:
    from defectlab.serving.quotas import limits_of

    return limits_of(organization.pk)


def _provision(
    name: str, email: str, values: dict[str, Any], model_file: Path | None, model_name: str
) -> tuple[Any, str, str, Any]:
    """Everything but the model's check, in one transaction: nothing is left half-made."""
    from django.db import transaction

    from defectlab.inference import registry
    from defectlab.serving.keys import create_key
    from defectlab.serving.quotas import set_quota
    from defectlab.tenancy.models import Organization, User, normalize_email
    from defectlab.tenancy.services import create_organization

    name = name.strip()
    if not name or len(name) > 150:
        raise click.UsageError("Give the organization a name of at most 150 characters.")
    if Organization.objects.filter(name=name).exists():
        raise click.ClickException(f"There is an organization {name!r} already.")
    password = ""
    with transaction.atomic():
        owner = User.objects.filter(email=normalize_email(email)).first()
        if owner is None:
            if "@" not in email:
                raise click.UsageError(f"{email!r} is not an e-mail address.")
            password = secrets.token_urlsafe(12)
            owner = User.objects.create_user(email, password)
        organization = create_organization(name, owner)
        set_quota(organization, None, **values)
        _key, text = create_key(organization, None, "detect")
        version = None
        if model_file is not None:
            model = registry.create_model(organization, None, name=model_name)
            version = registry.upload_version(
                model, None, model_file.read_bytes(), file_name=model_file.name
            )
    return organization, password, text, version


def _check(version: Any) -> None:
    """Run the version's check here, and name it production once it passed."""
    from defectlab.inference import registry
    from defectlab.inference.models import VersionState
    from defectlab.jobs.runner import run_job

    click.echo(f"Checking {version.model.name} version {version.number} in the sandbox…")
    run_job(version.job_id or 0)
    version.refresh_from_db()
    if version.state != VersionState.READY:
        raise click.ClickException(
            f"Version {version.number} failed its check ({version.error_code}): "
            f"{version.error}. The organization, its quota and key are made; upload a "
            "working file with `defectlab model upload`."
        )
    registry.move_alias(version.model, None, "production", version.number)
    click.echo(f"{version.model.name} version {version.number} is ready and named production.")
