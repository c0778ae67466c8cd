"""Browser tests of the caught-mail viewer: its reset link works, a mail's script never runs."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from support.browser import PHONE, log_in, shot_phone, shot_whole
from support.catching import mail
from support.factories import configure, run_queued_jobs

from portal.config import DEFAULT_BASE_URL

pytestmark = pytest.mark.browser
FITS_360 = "() => document.documentElement.scrollWidth <= window.innerWidth"
# The script would rewrite the probe, and tell the portal's page, if it ever ran.
SCRIPTED = """<!doctype html><html><head><style>h1 { color: #1f5fbf; }</style></head><body>
<h1>Your invoice</h1><p id="probe">Scripts stay off.</p>
<img src="data:," onerror="document.getElementById('probe').textContent = 'ran'">
<script>document.getElementById("probe").textContent = "ran";
try { parent.document.body.dataset.pwned = "1"; } catch (e) {}</script>
<p><a href="https://example.org/invoice/42">See it online</a></p></body></html>"""


@pytest.fixture
def forwarded(page: Page, live_server: str) -> Page:
    """Links in mails carry the configured base URL: forward them to this server."""
    page.context.route(
        f"{DEFAULT_BASE_URL}/**",
        lambda route: route.fulfill(
            status=302,
            headers={"Location": route.request.url.replace(DEFAULT_BASE_URL, live_server)},
        ),
    )
    return page


def test_the_reset_link_of_a_caught_mail_is_one_link_that_opens_set_password(
    forwarded, people, running_catcher
):
    page = forwarded
    configure(port=running_catcher.port)
    page.goto("/forgot-password")
    page.get_by_label("Email", exact=True).fill(people.superuser.email)
    page.get_by_role("button", name=re.compile("reset|send", re.I)).click()
    run_queued_jobs()  # the worker looks the address up and sends the mail to the catcher
    source = running_catcher.source(running_catcher.newest())
    link = re.search(rb"http://127\.0\.0\.1:5000/set-pass[^\s]*(?:=\r\n[^\s]*)+", source)
    assert link, "the reset link is not split by quoted-printable soft breaks"

    log_in(page, people.superuser.email)
    page.goto("/settings/mail/caught")
    expect(page.locator(".lede")).to_contain_text(f"127.0.0.1:{running_catcher.port}")
    page.get_by_role("link", name="Reset your password for the mail portal").click()
    reset = page.locator("pre.mail-text a")
    expect(reset).to_have_count(1)
    href = reset.get_attribute("href")
    assert href.startswith(f"{DEFAULT_BASE_URL}/set-password/") and reset.inner_text() == href
    assert href.encode() == re.sub(rb"=\r\n", b"", link.group())
    reset.click()
    expect(page.get_by_role("heading", name="Set your password")).to_be_visible()
    expect(page.get_by_text(f"For {people.superuser.email}.")).to_be_visible()


def test_a_caught_mails_html_is_shown_in_a_sandbox_where_no_script_runs(
    page, people, running_catcher
):
    report = b"%PDF-1.4 quarterly figures\n" * 40
    name = running_catcher.deliver(
        mail(
            subject="=?utf-8?q?Ihre_Rechnung_f=C3=BCr_M=C3=A4rz?=",
            text="Your invoice is attached: https://example.org/invoice/42",
            html=SCRIPTED,
            attachments=[("invoice-march.pdf", "application/pdf", report)],
        )
    )
    log_in(page, people.superuser.email)
    page.goto(f"/settings/mail/caught/{name}")
    expect(page.get_by_role("heading", name="HTML")).to_be_visible()
    frame_element = page.locator("iframe.mail-html")
    sandbox = frame_element.get_attribute("sandbox")
    assert sandbox is not None and "allow-scripts" not in sandbox
    assert "allow-same-origin" not in sandbox
    frame = page.frame_locator("iframe.mail-html")
    expect(frame.get_by_role("heading", name="Your invoice")).to_be_visible()
    expect(frame.locator("#probe")).to_have_text("Scripts stay off.")
    assert page.evaluate("document.body.dataset.pwned") is None
    expect(page.locator("dl.mail-headers")).to_contain_text("Ihre Rechnung für März")
    row = page.get_by_role("row", name=re.compile("invoice-march.pdf"))
    expect(row).to_contain_text("application/pdf")
    expect(row).to_contain_text("1.1 KB")
    with page.expect_download() as download:
        row.get_by_role("link", name="invoice-march.pdf").click()
    assert download.value.suggested_filename == "invoice-march.pdf"
    assert Path(download.value.path()).read_bytes() == report

    shot_phone(page, "caught-mail-phone")
    shot_whole(page, "caught-mail-phone", PHONE["width"])
    shot_whole(page, "caught-mail", 1280)
    page.set_viewport_size({"width": 360, "height": 800})
    assert page.evaluate(FITS_360), "the caught mail scrolls sideways at 360 px"

    page.get_by_role("link", name="Raw").click()
    expect(page.locator("pre.source")).to_contain_text("Content-Type: multipart/mixed")
    assert page.evaluate(FITS_360), "the raw view scrolls sideways at 360 px"
