"""The demo's mail catcher: a real SMTP server whose catch the superuser reads as its recipient."""

import html
import json
import re
import subprocess
import sys
from email.headerregistry import Address

import pytest
from support.catching import mail

from portal import catcher

LONG_LINK = "http://127.0.0.1:5000/set-password/" + "Ab3-_x" * 20  # past QP's 76-character lines


def test_caught_mail_is_listed_and_readable(as_superuser, running_catcher):
    name = running_catcher.deliver(mail())
    page = as_superuser.get("/settings/mail/caught").text
    assert "Caught" in page and "b@example.org" in page
    shown = as_superuser.get(f"/settings/mail/caught/{name}").text
    assert "Hello catcher" in shown


def test_the_page_names_the_port_the_catcher_listens_on(as_superuser, running_catcher):
    page = as_superuser.get("/settings/mail/caught").text
    assert f"listening on <code>127.0.0.1:{running_catcher.port}</code>" in page
    assert "1025" not in page


def test_without_a_running_catcher_the_page_says_so(as_superuser, app):
    page = as_superuser.get("/settings/mail/caught").text
    assert "mail catcher is not running" in page and "listening on" not in page


def test_a_catcher_that_died_without_tidying_up_is_not_shown_as_listening(as_superuser, app):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    directory = catcher.caught_dir(app.instance_path)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / catcher.LISTENING).write_text(
        json.dumps({"host": "127.0.0.1", "port": 2526, "pid": gone.pid})
    )
    page = as_superuser.get("/settings/mail/caught").text
    assert "mail catcher is not running" in page and "2526" not in page
    (directory / catcher.LISTENING).unlink()


def test_a_quoted_printable_link_is_shown_whole_and_clickable(as_superuser, running_catcher):
    name = running_catcher.deliver(
        mail(text=f"Set it here:\n\n{LONG_LINK}\n", cte="quoted-printable")
    )
    source = running_catcher.source(name)
    assert LONG_LINK.encode() not in source and b"=\n" in source.replace(b"\r\n", b"\n")
    page = as_superuser.get(f"/settings/mail/caught/{name}").text
    assert f'<a href="{LONG_LINK}" rel="noopener noreferrer">{LONG_LINK}</a>' in page


def test_encoded_words_in_headers_are_decoded(as_superuser, running_catcher):
    sender = Address("Jürgen Müller", addr_spec="jm@example.com")
    name = running_catcher.deliver(mail(subject="Grüße aus Köln – Ihr Zugang", sender=sender))
    source = running_catcher.source(name)
    assert b"=?utf-8?" in source and "Grüße".encode() not in source
    listed = as_superuser.get("/settings/mail/caught").text
    assert "Grüße aus Köln – Ihr Zugang" in listed
    page = as_superuser.get(f"/settings/mail/caught/{name}").text
    assert "<dt>Subject</dt><dd>Grüße aus Köln – Ihr Zugang</dd>" in page
    assert "<dt>From</dt><dd>Jürgen Müller &lt;jm@example.com&gt;</dd>" in page


def test_the_html_part_is_served_only_to_a_sandboxed_frame(as_superuser, running_catcher):
    markup = (
        '<html><head><style>p{color:red}</style></head><body><p id="probe">Hi</p></body></html>'
    )
    name = running_catcher.deliver(mail(html=markup))
    page = as_superuser.get(f"/settings/mail/caught/{name}").text
    frame = re.search(r"<iframe[^>]*>", page).group()
    sandbox = re.search(r'sandbox="([^"]*)"', frame).group(1)
    assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
    src = html.unescape(re.search(r'src="([^"]+)"', frame).group(1))
    preview = as_superuser.get(src)
    assert preview.status_code == 200 and '<p id="probe">Hi</p>' in preview.text
    policy = preview.headers["Content-Security-Policy"]
    assert policy.startswith("sandbox ") and "default-src 'none'" in policy
    assert "script-src" not in policy and "allow-scripts" not in policy
    assert preview.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_attachments_are_listed_and_download_as_sent(as_superuser, running_catcher):
    data = bytes(range(256)) * 7
    attachments = [("report.pdf", "application/pdf", data), ("notes.txt", "text/plain", b"hi")]
    name = running_catcher.deliver(mail(attachments=attachments))
    page = as_superuser.get(f"/settings/mail/caught/{name}").text
    assert "report.pdf" in page and "application/pdf" in page and "1.8 KB" in page
    assert "notes.txt" in page and "2 bytes" in page
    first = as_superuser.get(f"/settings/mail/caught/{name}/attachments/1")
    assert first.status_code == 200 and first.data == data
    assert first.headers["Content-Type"] == "application/pdf"
    assert first.headers["Content-Disposition"] == "attachment; filename=report.pdf"
    assert as_superuser.get(f"/settings/mail/caught/{name}/attachments/3").status_code == 404


def test_the_raw_view_shows_the_source_as_it_arrived(as_superuser, running_catcher):
    name = running_catcher.deliver(mail(text=f"{LONG_LINK}\n", cte="quoted-printable"))
    page = as_superuser.get(f"/settings/mail/caught/{name}/raw").text
    assert "Content-Transfer-Encoding: quoted-printable" in page
    assert LONG_LINK not in page and f'href="{LONG_LINK}"' not in page


@pytest.mark.parametrize("name", ["../secret_key", "..%2Fsecret_key", "x.eml", "listening.json"])
@pytest.mark.parametrize("view", ["", "/raw", "/html", "/attachments/1"])
def test_only_caught_files_can_be_read(as_superuser, name, view):
    assert as_superuser.get(f"/settings/mail/caught/{name}{view}").status_code == 404
