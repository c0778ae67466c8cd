"""portal.outbox.compose renders the same bytes for the same inputs, frozen in composed/."""

import re
from pathlib import Path

import pytest

from portal.models import Company, MailConfig, User
from portal.outbox.compose import Attachment, compose
from portal.settings.resolution import merge

FROZEN = Path(__file__).resolve().parent / "composed"
# What differs from one rendering to the next: the time, the Message-ID and the MIME boundaries.
DATE = re.compile(rb"^Date: [^\r\n]*\r\n", re.MULTILINE)
MESSAGE_ID = re.compile(rb"^Message-ID: [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*", re.MULTILINE)
BOUNDARY = re.compile(rb'boundary="([^"]+)"')

GLOBAL = {
    "sender_address": "noreply@example.com",
    "sender_name": "Example Portal",
    "default_sender_enabled": True,
}
FOOTER = {"footer_html": "<p>Example Ltd, 1 Main St</p>", "footer_text": "Example Ltd, 1 Main St"}
ACME = Company(name="Acme Ltd")
SAME_DOMAIN = User(email="ann@example.com", name="Ann Smith")
OTHER_DOMAIN = User(email="bob@acme.example.com", name="Bob Jones")
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4
LONG_LINE = "word " * 40  # past 78 characters: folded or encoded

CASES = {
    "plain": ({}, {"to": ["customer@example.org"], "subject": "Invoice", "text": "Attached."}),
    "footer_html_cc_reply_to": (
        {**FOOTER, "reply_to": "help@example.com"},
        {
            "to": ["a@example.org", "b@example.org"],
            "cc": ["Boss@Example.org"],
            "subject": "Report for the week",
            "text": "See the report.\n",
            "html": "<html><body><p>See the <b>report</b>.</p></body></html>",
            "reply_to": "desk@acme.example.com",
        },
    ),
    "same_domain_user": (
        {},
        {"user": SAME_DOMAIN, "to": ["x@example.org"], "subject": "Hi", "text": "Hello"},
    ),
    "other_domain_user": (
        {"reply_to": "help@example.com"},
        {"user": OTHER_DOMAIN, "to": ["x@example.org"], "subject": "Hi", "text": "Hello"},
    ),
    "attachments_and_bcc": (
        FOOTER,
        {
            "to": ["to@example.org"],
            "bcc": ["hidden@example.org"],
            "subject": "Files",
            "text": "Two files.",
            "attachments": [
                Attachment("invoice.pdf", "application/pdf", PDF),
                Attachment("data.csv", "text/csv", b"a,b\n1,2\n"),
            ],
        },
    ),
    "non_ascii": (
        {"sender_name": "Ünïcode Pörtal – Support"},
        {
            "to": ["kunde@example.org"],
            "subject": "Grüße aus Köln – Ihre Bestellung № 42 " + "ä" * 60,
            "text": f"Größe: 1 m²\n{LONG_LINE}\n" + "€" * 100,
        },
    ),
    "html_only": (
        FOOTER,
        {
            "to": ["x@example.org"],
            "subject": "News",
            "html": '<h1>News</h1><p>Read <a href="https://example.com/n">more</a></p>',
        },
    ),
    "bcc_only": ({}, {"bcc": ["x@example.org"], "subject": "Blind", "text": LONG_LINE}),
}


def masked(raw: bytes) -> bytes:
    """The rendering with its time, Message-ID and boundaries replaced by fixed text."""
    raw = DATE.sub(b"Date: masked\r\n", raw)
    raw = MESSAGE_ID.sub(b"Message-ID: <masked@example.com>\r\n", raw)
    for number, boundary in enumerate(dict.fromkeys(BOUNDARY.findall(raw))):
        raw = raw.replace(boundary, b"boundary-%d" % number)
    return raw


def rendered(name: str) -> bytes:
    settings_values, arguments = CASES[name]
    glob = MailConfig(company_id=None, **{**GLOBAL, **settings_values})
    settings = merge(ACME.id, glob, None)
    return compose(settings, company=ACME, **{"user": None, "to": [], **arguments}).raw


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_same_inputs_compose_to_the_frozen_bytes(name):
    assert masked(rendered(name)) == (FROZEN / f"{name}.eml").read_bytes()


def test_composing_twice_gives_the_same_bytes_but_a_new_message_id():
    first, second = rendered("footer_html_cc_reply_to"), rendered("footer_html_cc_reply_to")
    assert masked(first) == masked(second)
    assert MESSAGE_ID.search(first).group() != MESSAGE_ID.search(second).group()


# One input varied at a time around a plain mail: names, subjects, recipients and bodies that
# the email package writes back as given, and ones it quotes, folds or encodes.
NAMES = ["Portal", "J. Smith", "Acme, Inc.", "O'Brien", 'Say "hi"', "a\\b", "x" * 70, "", "Zoë"]
SUBJECTS = [
    "Invoice",
    "bench 00001",
    "  two  spaces ",
    "=?utf-8?q?x?=",
    "Re: [#42] (urgent) <a@b>",
    "a;b:c,d",
    "x" * 68,
    "x" * 69,
    "x" * 80,
    "trailing ",
    "tab\tinside",
    "",
    "ünï",
]
RECIPIENTS = [
    {"to": ["a@example.org"]},
    {"to": ["a@example.org", "B@Example.ORG", "c+tag@example.org"]},
    {"to": [f"user{n}@example.org" for n in range(5)]},
    {"bcc": ["hidden@example.org"]},
    {"to": ["a@example.org"], "cc": ["c@example.org"], "reply_to": "desk@example.org"},
    {"to": ["a@example.org"], "user": SAME_DOMAIN},
    {"to": ["a@example.org"], "user": OTHER_DOMAIN},
    {"to": ["a@bücher.example"]},
]
BODIES = [
    "Hello",
    "a\n\nb\n",
    "line\r\nwindows\rmac",
    "x" * 78,
    "x" * 79,
    "spaces   \n",
    "\n\n",
    " ",
    "form\x0cfeed",
    "From me\n",
    ".dot\n..two\n",
    "tab\there",
    "ünï",
    "\x00nul",
]
SETTINGS = [
    {},
    {"reply_to": "help@example.com"},
    {"reply_to": "Help Desk <help@example.com>"},
    FOOTER,
]


def variants():
    plain = {"to": ["a@example.org"], "subject": "Invoice", "text": "Attached."}
    yield from (({"sender_name": name}, plain) for name in NAMES)
    yield from (({}, {**plain, "subject": subject}) for subject in SUBJECTS)
    yield from (({}, {**plain, "to": [], **recipients}) for recipients in RECIPIENTS)
    yield from (({}, {**plain, "text": body}) for body in BODIES)
    yield from ((values, plain) for values in SETTINGS)
    yield {"footer_text": "Example Ltd"}, plain


def test_a_plain_text_mail_has_the_bytes_the_email_package_writes(monkeypatch):
    from portal.outbox import compose as module

    fast = []
    shortcut = module._plain_bytes

    def counted(headers, body_text):
        result = shortcut(headers, body_text)
        fast.append(result is not None)
        return result

    for settings_values, arguments in variants():
        glob = MailConfig(company_id=None, **{**GLOBAL, **settings_values})
        settings = merge(ACME.id, glob, None)
        arguments = {"user": None, **arguments}
        monkeypatch.setattr(module, "_plain_bytes", counted)
        taken = compose(settings, company=ACME, **arguments).raw
        monkeypatch.setattr(module, "_plain_bytes", lambda headers, body_text: None)
        package = compose(settings, company=ACME, **arguments).raw
        assert masked(taken) == masked(package), (settings_values, arguments)
    # Not vacuous: both ways were taken.
    assert 20 < sum(fast) < len(fast)
