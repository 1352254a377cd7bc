"""`defectlab provision / key / quota / usage` on the local installation, acting as the
operator: provision makes a working tenant in one command (the demo model checked and named
production), keys are printed once, quotas take `none`."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import defectlab.inference.demo
from defectlab.cli import main
from defectlab.inference.models import DetectionModel, ModelAlias, ModelVersion, VersionState
from defectlab.serving import keys
from defectlab.serving.models import OrganizationKey, Quota
from defectlab.serving.quotas import limits_of
from defectlab.tenancy.models import AuditEvent, Membership, Organization, Role, User
from tests.conftest import Tenant
from tests.serving.calls import call

DEMO_MODEL = next(Path(defectlab.inference.demo.__file__).parent.glob("*.onnx"))


@pytest.fixture(autouse=True)
def sandbox(settings: Any) -> None:
    settings.MODEL_CHECK_MEMORY_MB = 768
    settings.MODEL_CHECK_SECONDS = 60.0


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), prog_name="defectlab")
    return result.exit_code, result.output


def _printed(output: str, before: str) -> str:
    line = next(line for line in output.splitlines() if before in line)
    return line.split(before, 1)[1].split(" ", 1)[0]


def test_provision_makes_a_tenant_ready_to_detect_end_to_end(
    db: None, queued: list[int], tmp_path: Path
) -> None:
    code, output = run(
        "provision", "Plant 9", "--owner", "boss@plant9.test", "--rpm", "120",
        "--images-per-day", "none", "--model", str(DEMO_MODEL), "--model-name", "Panels",
    )  # fmt: skip
    assert code == 0, output
    organization = Organization.objects.get(name="Plant 9")
    owner = User.objects.get(email="boss@plant9.test")
    assert Membership.objects.get(organization=organization).user == owner
    assert Membership.objects.get(organization=organization).role == Role.OWNER
    # The new account's password and the key: printed once, and they work.
    password = _printed(output, "its password is ")
    assert owner.check_password(password)
    text = _printed(output, "Its detect key is ")
    key = OrganizationKey.objects.get(organization=organization)
    found = keys.active_key(key.key_id)
    assert found is not None and found.matches(text) and key.scopes == ["detect"]
    limits = limits_of(organization.pk)
    assert (limits.custom, limits.requests_per_minute, limits.images_per_day) == (True, 120, None)
    version = ModelVersion.objects.get(model__organization=organization)
    assert version.state == VersionState.READY and version.model.name == "Panels"
    assert ModelAlias.objects.get(model=version.model).name == "production"
    assert "Panels version 1 is ready and named production." in output
    actions = set(
        AuditEvent.objects.filter(organization=organization).values_list("action", flat=True)
    )
    assert {"organization.created", "quota.updated", "service_key.created"} <= actions
    assert AuditEvent.objects.get(action="quota.updated").actor is None  # the operator

    # The same name again is refused and makes nothing.
    code, output = run("provision", "Plant 9", "--owner", "boss@plant9.test")
    assert code == 1 and "already" in output
    assert Organization.objects.filter(name="Plant 9").count() == 1


def test_provision_with_an_existing_owner_prints_no_password(tenant: Tenant) -> None:
    owner = tenant.user(Role.ADMIN)
    code, output = run("provision", "Plant 10", "--owner", owner.email.upper())
    assert code == 0, output
    assert "password" not in output
    organization = Organization.objects.get(name="Plant 10")
    assert Membership.objects.get(organization=organization).user == owner
    assert limits_of(organization.pk).custom
    assert not DetectionModel.objects.filter(organization=organization).exists()


def test_provision_refuses_a_model_without_a_name_and_bad_input_makes_nothing(
    db: None,
) -> None:
    code, output = run("provision", "P", "--owner", "a@p.test", "--model", str(DEMO_MODEL))
    assert code == 2 and "--model-name" in output
    code, output = run("provision", "P", "--owner", "a@p.test", "--rpm", "0")
    assert code == 2
    code, output = run("provision", "P", "--owner", "not-an-address")
    assert code == 2
    assert not Organization.objects.exists() and not User.objects.exists()


def test_provision_with_a_broken_model_keeps_the_rest_and_says_so(db: None, tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    code, output = run(
        "provision", "P", "--owner", "a@p.test", "--model", str(broken), "--model-name", "M"
    )
    assert code == 1 and "Error:" in output
    assert not Organization.objects.exists()  # refused on upload: nothing is left half-made


def test_key_create_list_and_revoke(tenant: Tenant) -> None:
    code, output = run(
        "key", "create", "Acme", "line 3", "--scope", "detect", "--scope", "models", "--signed-only"
    )
    assert code == 0, output
    text = _printed(output, "Its text is ")
    key = OrganizationKey.objects.get()
    assert (key.scopes, key.signed_only, key.created_by) == (["detect", "models"], True, None)
    assert keys.active_key(key.key_id).matches(text)  # type: ignore[union-attr]
    code, output = run("key", "list", str(tenant.organization.pk))
    assert (
        code == 0 and f"dlk_{key.key_id}  line 3  [detect, models, signed only]  active" in output
    )
    assert text not in output
    code, output = run("key", "revoke", "Acme", f"dlk_{key.key_id}")
    assert code == 0 and "Revoked the key line 3" in output
    code, output = run("key", "revoke", "Acme", key.key_id)
    assert code == 0 and "revoked already" in output
    assert AuditEvent.objects.filter(action="service_key.revoked").count() == 1
    assert keys.active_key(key.key_id) is None
    code, output = run("key", "revoke", "Acme", "dlk_nosuchkey0")
    assert code == 1 and "has no key" in output
    code, output = run("key", "create", "Acme", "x", "--scope", "root")
    assert code == 2
    code, output = run("key", "create", "Nobody Inc", "x")
    assert code == 1 and "There is no organization" in output


def test_another_organizations_key_is_not_revoked_by_naming_this_one(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs, _text = keys.create_key(other_tenant.organization, None, "theirs")
    code, output = run("key", "revoke", "Acme", theirs.key_id)
    assert code == 1 and "Acme has no key" in output
    assert OrganizationKey.objects.get().revoked_at is None


def test_quota_set_none_lifts_a_limit_and_show_says_so(tenant: Tenant, settings: Any) -> None:
    settings.QUOTA_REQUESTS_PER_MINUTE = 600
    code, output = run("quota", "show", "Acme")
    assert code == 0 and "the installation's defaults" in output
    assert "requests per minute   600" in output
    code, output = run(
        "quota", "set", "Acme", "--rpm", "none", "--concurrent", "3", "--weight", "5"
    )
    assert code == 0, output
    row = Quota.objects.get()
    assert (row.requests_per_minute, row.concurrent_requests, row.weight) == (None, 3, 5)
    assert "requests per minute   no limit" in output and "set by the operator" in output
    code, output = run("quota", "set", "Acme", "--max-image-mb", "NONE")
    assert code == 0 and Quota.objects.get().max_image_mb is None
    assert Quota.objects.get().concurrent_requests == 3
    for bad in (["--rpm", "0"], ["--rpm", "lots"], ["--weight", "101"], []):
        code, output = run("quota", "set", "Acme", *bad)
        assert code == 2, (bad, output)
    assert AuditEvent.objects.filter(action="quota.updated").count() == 2


def test_usage_prints_days_and_totals_and_the_billing_csv(tenant: Tenant) -> None:
    from django.utils import timezone

    key, _text = keys.create_key(tenant.organization, None, "line 3")
    now = timezone.now()
    call(tenant.organization, key, now, images=3, detections=5)
    call(tenant.organization, key, now, images=1, status=429)
    code, output = run("usage", "Acme", "--days", "7")
    assert code == 0, output
    assert output.splitlines()[-1].split() == ["total", "2", "4", "5", "1"]
    code, output = run("usage", str(tenant.organization.pk), "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(output)))
    assert len(rows) == 1
    assert (rows[0]["key_id"], rows[0]["calls"], rows[0]["errors"]) == (
        f"dlk_{key.key_id}",
        "2",
        "1",
    )
