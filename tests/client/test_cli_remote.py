"""`defectlab remote` against a live server: list projects, upload a folder, export and
download, import the export into another project, and a URL import whose refused address is
reported — all through the SDK, with the token from DEFECTLAB_TOKEN."""

from __future__ import annotations

import zipfile
from pathlib import Path

from click.testing import CliRunner

from defectlab.cli import main
from defectlab.labeling import services
from defectlab.labeling.models import Task
from defectlab.tenancy.models import User
from defectlab.tenancy.services import create_api_token, create_organization
from tests.client.conftest import Server, defect_image


def test_remote_commands_round_trip(server: Server, tmp_path: Path) -> None:
    user = User.objects.get(email=server.email)
    _token, key = create_api_token(user, "cli")
    organization = create_organization("Acme", user)
    source = services.create_project(organization, user, name="Source", labels=[{"name": "crack"}])
    target = services.create_project(organization, user, name="Target")
    for number in range(3):
        defect_image(tmp_path / "in" / f"p{number}.png", (2, 2, 10 + number, 12))
    runner = CliRunner()
    env = {"DEFECTLAB_URL": server.url, "DEFECTLAB_TOKEN": key}

    def remote(*args: str) -> str:
        result = runner.invoke(main, ["remote", *args], env=env, prog_name="defectlab")
        assert result.exit_code == 0, result.output
        return result.output

    listed = remote("projects", "--organization", str(organization.pk))
    assert f"{source.pk}\tSource" in listed and f"{target.pk}\tTarget" in listed

    assert "Uploaded 3 images" in remote(
        "upload", str(source.pk), str(tmp_path / "in"), "--batch", "2"
    )
    assert Task.objects.filter(project=source).count() == 3

    out = tmp_path / "out"
    out.mkdir()
    exported = remote(
        "export", str(source.pk), "--format", "coco", "--include-unlabeled", "--out", str(out)
    )
    (archive,) = out.iterdir()
    assert f"Wrote {archive} (3 images)" in exported
    with zipfile.ZipFile(archive) as zipped:
        assert sum(name.endswith(".png") for name in zipped.namelist()) == 3

    imported = remote("import-dataset", str(target.pk), str(archive), "--format", "coco")
    assert f"into project {target.pk}" in imported
    assert Task.objects.filter(project=target).count() == 3

    listing = tmp_path / "urls.txt"
    listing.write_text("http://127.0.0.1:9/a.png\n")
    result = runner.invoke(
        main,
        ["remote", "import-urls", str(target.pk), str(listing)],
        env=env,
        prog_name="defectlab",
    )
    assert result.exit_code == 0, result.output
    assert "Imported 0, failed 1." in result.output
    assert "line 1:" in result.output


def test_remote_refusals_end_the_command_with_the_servers_message(server: Server) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["remote", "export", "999999"],
        env={"DEFECTLAB_URL": server.url, "DEFECTLAB_TOKEN": "dl_nope"},
        prog_name="defectlab",
    )
    assert result.exit_code == 1
    assert "401" in result.output and "not valid" in result.output
    missing = runner.invoke(
        main, ["remote", "projects"], env={"DEFECTLAB_URL": "", "DEFECTLAB_TOKEN": ""}
    )
    assert missing.exit_code == 2 and "DEFECTLAB_URL" in missing.output
