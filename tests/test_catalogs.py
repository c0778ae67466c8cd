"""Every English string of the portal is translated, well formed, in every language's catalog."""

import pytest
from support import catalogs


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return catalogs.extract(tmp_path_factory.mktemp("pot"))


def test_the_source_strings_are_extracted_from_templates_and_python(source):
    ids = {message.id if isinstance(message.id, str) else message.id[0] for message in source}
    assert "My account" in ids
    assert len(ids) > 300


@pytest.mark.parametrize("code", catalogs.TRANSLATED)
def test_every_source_string_has_a_translation(source, code):
    catalog = catalogs.read(code)
    missing = []
    for message in source:
        if not message.id:
            continue
        found = catalog.get(message.id, message.context)
        strings = found and (found.string if isinstance(found.string, tuple) else (found.string,))
        if not found or found.fuzzy or not all(strings):
            missing.append(message.id)
    assert missing == [], f"{code}: {len(missing)} untranslated; run `make messages` and translate"


@pytest.mark.parametrize("code", catalogs.TRANSLATED)
def test_plurals_have_every_form_of_the_language_and_placeholders_match(code):
    catalog = catalogs.read(code)
    problems = [
        (message.id, [str(error) for error in errors]) for message, errors in catalog.check()
    ]
    assert problems == []
    for message in catalog:
        if message.id and isinstance(message.id, tuple):
            assert len(message.string) == catalog.num_plurals, message.id
