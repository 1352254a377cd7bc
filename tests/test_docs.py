"""Documentation that cannot drift: every setting and every CLI command is documented."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
from click.testing import CliRunner

import defectlab
from defectlab.cli import main
from defectlab.client import ENVIRONMENT as CLIENT_VARIABLES
from defectlab.settings import SETTINGS
from defectlab.tenancy.models import Role
from tests.conftest import Tenant, box, client_for

ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path(defectlab.__file__).parent
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()
CLI_DOCS = (ROOT / "docs" / "cli.md").read_text()


def test_every_setting_is_documented() -> None:
    undocumented = [name for name in SETTINGS if f"`{name}`" not in CONFIGURATION]
    assert not undocumented, f"add to docs/configuration.md: {undocumented}"


def test_every_defectlab_variable_in_the_code_is_a_registered_setting() -> None:
    used = set()
    for path in [*SOURCE.rglob("*.py"), ROOT / "Makefile", *(ROOT / ".ci").glob("*")]:
        used |= set(re.findall(r"DEFECTLAB_[A-Z_]+[A-Z]", path.read_text()))
    unregistered = sorted(used - set(SETTINGS) - set(CLIENT_VARIABLES))
    assert not unregistered, f"read these through settings.env(): {unregistered}"


def test_the_client_variables_are_documented_apart_from_the_servers() -> None:
    """The SDK's variables configure a script's connection, not a server: they are listed under
    their own heading, and no server setting shares their names."""
    assert not set(CLIENT_VARIABLES) & set(SETTINGS)
    scripts = CONFIGURATION[CONFIGURATION.index("## Scripts") :]
    missing = [name for name in CLIENT_VARIABLES if f"`{name}`" not in scripts]
    assert not missing, f"add to docs/configuration.md, under “Scripts”: {missing}"


def test_documented_settings_all_exist() -> None:
    documented = set(re.findall(r"`(DEFECTLAB_[A-Z_]+)`", CONFIGURATION))
    known = set(SETTINGS) | set(CLIENT_VARIABLES)
    assert documented <= known, f"documented but unknown: {documented - known}"


def test_every_cli_command_is_documented_and_has_help() -> None:
    runner = CliRunner()
    context = click.Context(main)
    for name in main.list_commands(context):
        command = main.get_command(context, name)
        assert command is not None
        assert f"defectlab {name}" in CLI_DOCS, f"document `defectlab {name}` in docs/cli.md"
        assert command.help, f"`defectlab {name}` needs a help text"
        result = runner.invoke(main, [name, "--help"], prog_name="defectlab")
        assert result.exit_code == 0
        assert f"Usage: defectlab {name}" in result.output
        if isinstance(command, click.Group):  # `defectlab remote export` …
            for sub, subcommand in command.commands.items():
                assert f"defectlab {name} {sub}" in CLI_DOCS, f"document `defectlab {name} {sub}`"
                assert subcommand.help, f"`defectlab {name} {sub}` needs a help text"
                result = runner.invoke(main, [name, sub, "--help"], prog_name="defectlab")
                assert result.exit_code == 0, result.output
                assert f"Usage: defectlab {name} {sub}" in result.output


def test_the_error_example_in_the_api_docs_numbers_shapes_as_the_api_does(tenant: Tenant) -> None:
    """docs/api.md says shape numbers are 1-based, and its example is an answer the API gives."""
    api_docs = (ROOT / "docs" / "api.md").read_text()
    errors = api_docs[api_docs.index("## Errors") :]
    assert "1-based" in errors[: errors.index("\n## ")]
    example = json.loads(errors.split("```json\n", 1)[1].split("```", 1)[0])["error"]
    # The second shape of a save is a box without area.
    task = tenant.tasks[0]
    shapes = [box(tenant.label), box(tenant.label, 10, 10, 10, 30)]
    response = client_for(tenant.user(Role.ANNOTATOR)).put(
        f"/api/tasks/{task.pk}/annotation/", {"version": None, "shapes": shapes}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"] == example


def test_the_architecture_page_draws_the_layers_the_lint_contract_enforces() -> None:
    """docs/architecture.md's diagram names the layers of pyproject's import-linter contract, in
    its order, and says what every app and top-level module of the package owns."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [contract for contract in config["contracts"] if contract["type"] == "layers"]
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    diagram = architecture.split("```")[1]
    lines = [line.strip() for line in diagram.splitlines() if line.strip().startswith("defectlab")]
    drawn = [" ".join(re.split(r"\s{3,}", line)[0].split()) for line in lines]
    assert drawn == [" ".join(layer.split()) for layer in contract["layers"]]
    parts = {
        path.stem
        for path in SOURCE.iterdir()
        if (path.is_dir() and (path / "__init__.py").exists())
        or (path.suffix == ".py" and path.stem not in ("__init__", "settings", "wsgi", "urls"))
    }
    owned = set(re.findall(r"^- \*\*(\w+)\*\*|, \*\*(\w+)\*\*", architecture, re.M))
    named = {name for pair in owned for name in pair if name}
    assert parts <= named, f"say what these own in docs/architecture.md: {parts - named}"
    for layer in contract["layers"]:
        for module in re.split(r"[|:]", layer):
            assert (SOURCE.parent / module.strip().replace(".", "/")).exists() or (
                SOURCE.parent / (module.strip().replace(".", "/") + ".py")
            ).exists(), f"the contract names {module.strip()}, which does not exist"


def api_operations() -> list[str]:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        f"{method.upper()} {path}"
        for path, item in schema["paths"].items()
        for method in item
        if method in ("get", "put", "post", "patch", "delete")
    ]


def test_every_operation_in_the_schema_is_in_the_api_docs() -> None:
    """docs/api.md names every operation as `METHOD /api/path/` (with `{id}` placeholders, as
    the schema writes them)."""
    api_docs = (ROOT / "docs" / "api.md").read_text()
    operations = api_operations()
    assert "POST /api/projects/{id}/export/" in operations
    missing = [operation for operation in operations if operation not in api_docs]
    assert not missing, f"say what these do in docs/api.md: {missing}"


def test_the_api_docs_give_every_export_format_and_option_with_its_true_default() -> None:
    """The export options the schema documents are the ones the export takes, and docs/api.md's
    tables name every format and every option with the default the export applies."""
    from defectlab.datasets import FORMATS
    from defectlab.transfer.api.serializers import ExportOptionsSerializer
    from defectlab.transfer.exports import clean_options

    api_docs = (ROOT / "docs" / "api.md").read_text()
    exports = api_docs[api_docs.index("### Exports") :]
    exports = exports[: exports.index("\n### ")]
    defaults = clean_options({"format": "yolo"})
    documented = ExportOptionsSerializer().fields
    assert set(documented) == set(defaults), "the schema's export options are the export's"
    for name in FORMATS:
        assert f"| `{name}` |" in exports, f"docs/api.md: add the export format `{name}`"
        assert f"`{name}`" in str(documented["format"].help_text), f"schema: format `{name}`"
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", exports, re.M))
    for name, value in defaults.items():
        assert name in rows, f"docs/api.md: add the export option `{name}`"
        if name == "format":
            continue
        if name == "split":
            assert value == {} and "every task in `train`" in rows[name]
            continue
        assert rows[name].strip() == f"`{json.dumps(value)}`", f"the default of `{name}`"
        assert documented[name].default == value, f"the schema's default of `{name}`"
