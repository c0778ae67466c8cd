"""Showing a mail on a page: links in its text, sizes and times for people."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from portal.i18n import speaking
from portal.web.mail_view import human_size, linkify, moment


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (5, "5 bytes"),
        (1023, "1023 bytes"),
        (1024, "1.0 KB"),
        (1234, "1.2 KB"),
        (5 * 1024 * 1024 + 300 * 1024, "5.3 MB"),
        (3 * 1024**3, "3.0 GB"),
    ],
)
def test_sizes_read_with_their_unit(size, shown):
    assert human_size(size) == shown


@pytest.mark.parametrize(
    ("text", "markup"),
    [
        (
            "Open https://example.org/a?b=1&c=2.",
            'Open <a href="https://example.org/a?b=1&amp;c=2" rel="noopener noreferrer">'
            "https://example.org/a?b=1&amp;c=2</a>.",
        ),
        (
            "(see http://x.example/p)",
            '(see <a href="http://x.example/p" rel="noopener noreferrer">http://x.example/p</a>)',
        ),
        ("<b>javascript:alert(1)</b>", "&lt;b&gt;javascript:alert(1)&lt;/b&gt;"),
        (
            'http://e.example/"onmouseover=x',
            '<a href="http://e.example/" rel="noopener noreferrer">http://e.example/</a>&#34;onmouseover=x',
        ),
    ],
    ids=["query and full stop", "parenthesis", "no scheme but http(s)", "quote ends it"],
)
def test_only_web_addresses_in_a_text_become_links_and_the_rest_is_escaped(text, markup):
    assert str(linkify(text)) == markup


def test_a_time_is_written_in_utc_for_the_browser_to_show_locally():
    noon_in_paris = datetime(2026, 3, 1, 13, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    assert str(moment(noon_in_paris)) == (
        '<time datetime="2026-03-01T12:00:05Z" title="2026-03-01 12:00:05 UTC" data-local>'
        "Mar 1, 2026, 12:00:05\u202fPM UTC</time>"
    )
    assert str(moment(None)) == "—"
    assert str(moment(datetime(2026, 3, 1, 12, tzinfo=UTC))).endswith("12:00:00\u202fPM UTC</time>")


@pytest.mark.parametrize(
    ("code", "size", "shown"),
    [
        ("pt_BR", 1234, "1,2 KB"),
        ("pl", 3, "3 bajty"),
        ("pl", 5, "5 bajtów"),
        ("ro", 1, "1 octet"),
        ("ro", 20, "20 de octeți"),
        ("cs", 5 * 1024 * 1024 + 300 * 1024, "5,3 MB"),
    ],
)
def test_sizes_are_written_with_the_languages_decimals_and_plurals(app, code, size, shown):
    with app.test_request_context(), speaking(code):
        assert human_size(size) == shown


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        ("pt_BR", "4 de dez. de 2026 09:30:05 UTC"),
        ("pl", "4 gru 2026, 09:30:05 UTC"),
        ("ro", "4 dec. 2026, 09:30:05 UTC"),
        ("cs", "4. 12. 2026 9:30:05 UTC"),
    ],
)
def test_a_time_is_written_in_the_languages_format_its_attributes_unchanged(app, code, shown):
    with app.test_request_context(), speaking(code):
        written = str(moment(datetime(2026, 12, 4, 9, 30, 5, tzinfo=UTC)))
    assert written == (
        '<time datetime="2026-12-04T09:30:05Z" title="2026-12-04 09:30:05 UTC" data-local>'
        f"{shown}</time>"
    )
