"""The text part of an HTML-only mail: what a reader sees, never CSS, script or hidden markup."""

import email
from email import policy

import pytest
from support.factories import mail_config

from portal import outbox
from portal.text import to_text

NEWSLETTER = """<!DOCTYPE html>
<html><head><title>Invoice 42 (title)</title>
<style>p { color: red } .hidden { display: none }</style>
<script>window.track("open")</script></head>
<body>
<!--[if mso]><p>Only Outlook sees this</p><![endif]-->
<h1>Your invoice</h1>
<p>Hello Ann &amp; team,</p>
<table>
  <tr><th>Item</th><th>Amount</th></tr>
  <tr><td>Hosting</td><td>40 EUR</td></tr>
  <tr><td>Total</td><td>42 EUR</td></tr>
</table>
<ul><li>Pay within 30 days</li><li>Quote the invoice number</li></ul>
<p>Details: <a href="https://billing.example.com/i/42?a=1&amp;b=2">your account</a></p>
<noscript>Enable JavaScript</noscript>
</body></html>"""


@pytest.fixture
def sender(app):
    mail_config(
        host="mail.example.com",
        default_sender_enabled=True,
        sender_address="noreply@example.com",
    )


def test_an_html_only_mail_gets_a_text_part_a_reader_can_use(sender):
    message = outbox.send(None, to=["ann@example.org"], subject="Invoice 42", html=NEWSLETTER)
    parsed = email.message_from_bytes(message.raw, policy=policy.default)
    text = parsed.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    assert "Total 42 EUR" in text and "Hosting 40 EUR" in text and "Item Amount" in text
    assert "- Pay within 30 days\n- Quote the invoice number" in text
    assert "Hello Ann & team," in text
    assert "your account (https://billing.example.com/i/42?a=1&b=2)" in text
    for leak in ("color: red", "display: none", "window.track", "(title)", "Outlook", "JavaScript"):
        assert leak not in text


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>One<br>Two</p><p>Three</p>", "One\nTwo\nThree"),
        ("<div>a</div><div>b</div>", "a\nb"),
        ("<p>x &lt;y&gt;</p>", "x <y>"),
        ("<style>b{}</style><b>bold</b>", "bold"),
        ('<a href="https://e.example/">e</a>', "e (https://e.example/)"),
    ],
)
def test_to_text(markup, text):
    assert to_text(markup) == text
