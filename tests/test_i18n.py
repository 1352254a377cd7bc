"""The Chinese catalog is complete, current with the source, compiled, and keeps placeholders."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import polib
import pytest
from django.core.management import call_command

import defectlab

PACKAGE = Path(defectlab.__file__).parent
CATALOG = PACKAGE / "web" / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|\{\w*\}")


def catalog() -> polib.POFile:
    return polib.pofile(str(CATALOG))


def test_every_entry_is_translated_and_none_is_fuzzy() -> None:
    po = catalog()
    untranslated = [entry.msgid for entry in po.untranslated_entries()]
    fuzzy = [entry.msgid for entry in po.fuzzy_entries()]
    assert not untranslated, f"untranslated: {untranslated}"
    assert not fuzzy, f"fuzzy: {fuzzy}"


def translation_of(entry: polib.POEntry) -> str:
    return entry.msgstr_plural.get(0, "") if entry.msgid_plural else entry.msgstr


def test_translations_keep_the_placeholders_of_the_source() -> None:
    for entry in catalog().translated_entries():
        expected = sorted(set(PLACEHOLDER.findall(entry.msgid)))
        assert sorted(set(PLACEHOLDER.findall(translation_of(entry)))) == expected, entry.msgid


def test_compiled_catalog_matches_the_source_catalog() -> None:
    # By context and msgid: "Moved" (an alias's time) and pgettext("proposals", "Moved") differ.
    compiled = {
        (entry.msgctxt, entry.msgid): translation_of(entry)
        for entry in polib.mofile(str(CATALOG.with_suffix(".mo")))
    }
    for entry in catalog().translated_entries():
        assert compiled.get((entry.msgctxt, entry.msgid)) == translation_of(entry), (
            f"run `make messages`: {entry.msgid!r}"
        )


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="needs GNU gettext (xgettext)")
def test_catalog_holds_every_translatable_string_in_the_source(
    tmp_path: Path, settings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # Extract from a copy of the package: makemessages writes into the catalog it finds.
    copy = tmp_path / "defectlab"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "static"))
    copied_catalog = copy / CATALOG.relative_to(PACKAGE)
    settings.LOCALE_PATHS = [copied_catalog.parents[2]]
    monkeypatch.chdir(copy)
    call_command("makemessages", locale=["zh_Hans"], verbosity=0, no_obsolete=True, no_wrap=True)
    fresh = {entry.msgid for entry in polib.pofile(str(copied_catalog)) if not entry.obsolete}
    known = {entry.msgid for entry in catalog()}
    missing = sorted(fresh - known)
    assert not missing, f"new strings need translating (`make messages`): {missing}"
    stale = sorted(known - fresh)
    assert not stale, f"strings no longer in the source (`make messages`): {stale}"


def test_english_is_the_source_language_and_chinese_is_offered() -> None:
    from django.conf import settings

    assert settings.LANGUAGE_CODE == "en"
    assert dict(settings.LANGUAGES).keys() == {"en", "zh-hans"}
