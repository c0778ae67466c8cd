"""Browser test of the mail log: a queued mail turns sent in the open page, without a reload."""

import pytest
from playwright.sync_api import expect
from support.browser import assert_not_reloaded, log_in, mark_window, shot
from support.factories import configure
from support.smtp_servers import smtp_server

from portal import delivery, outbox

pytestmark = pytest.mark.browser


def test_a_queued_mail_turns_sent_in_the_open_log(page, people):
    with smtp_server() as server:
        configure(people.acme, port=server.port, sender_address="mail@acme.example.com")
        queued = outbox.send(
            people.acme, to=["ann@example.org"], subject="Welcome aboard", text="Hello Ann"
        )
        log_in(page, people.acme_admin.email)
        page.goto(f"/companies/{people.acme.id}/mail")
        row = page.locator(f"#mail-row-{queued.id}")
        expect(row).to_contain_text("Welcome aboard")
        expect(row.locator(".status")).to_have_text("queued")
        mark_window(page)
        row.get_by_role("checkbox").check()  # a choice in progress survives the polling

        delivery.deliver(queued.id)

        expect(row.locator(".status")).to_have_text("sent", timeout=10_000)
        expect(row).to_contain_text("queued as")
        expect(row.get_by_role("checkbox")).to_be_checked()
        expect(page.locator("#maillog-poll[hx-get]")).to_have_count(0)  # polling stopped
        assert_not_reloaded(page)
        assert len(server.handler.messages) == 1
        shot(page, "maillog")
