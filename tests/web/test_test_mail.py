"""The test mail queued from the mail settings screens: delivered by a worker, shown in the log."""

import email
import re
from email import policy

import pytest
from sqlalchemy import func, select
from support.factories import configure, queue, stored_mails
from support.forms import GLOBAL_URL, company_url
from support.web import Browser
from support.workers import wait_until_final

from portal.extensions import db
from portal.models import AuditEntry
from portal.outbox.test_mail import MSG_RECIPIENT, SUBJECT

MAIL_LINK = re.compile(r'href="/mail/(\d+)">#\d+</a>')


@pytest.fixture
def as_globex(web, people) -> Browser:
    """Globex's admin, in a client of their own beside the test's other user."""
    client = Browser(web.test_client())
    client.login(people.globex_admin.email)
    return client


def send_url(company=None) -> str:
    return "/settings/mail/test-mail" if company is None else f"{company_url(company)}/test-mail"


def log_url(company=None) -> str:
    return "/mail?type=tests" if company is None else f"/companies/{company.id}/mail?type=tests"


def audit_count(action: str) -> int:
    db.session.rollback()
    return db.session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
    )


def test_a_worker_delivers_the_test_mail_with_the_companys_sender(workers, as_acme, people, server):
    configure(people.acme, port=server.port, sender_address="mail@acme.example.com")
    workers.start()
    answer = as_acme.post(send_url(people.acme), {"queue_recipient": "ops@example.org"}, htmx=True)
    assert answer.status_code == 200, answer.text
    mail_id = int(MAIL_LINK.search(answer.text).group(1))
    assert "queued" in answer.text and f'href="{log_url(people.acme)}"' in answer.text
    wait_until_final(1)

    [arrived] = server.handler.messages
    assert arrived.mail_from == "mail@acme.example.com" and arrived.rcpt_tos == ["ops@example.org"]
    parsed = email.message_from_bytes(arrived.data, policy=policy.default)
    assert parsed["Subject"] == SUBJECT and "mail@acme.example.com" in parsed["From"]
    status = as_acme.get(f"/mail/{mail_id}/test-status", htmx=True)
    assert status.status_code == 200 and 'class="status status-sent"' in status.text
    assert "hx-trigger" not in status.text  # polling stops once the mail is final
    log = as_acme.get(log_url(people.acme)).text
    row = re.search(rf'<tr id="mail-row-{mail_id}".*?</tr>', log, re.S).group(0)
    assert "status-sent" in row and 'class="badge test-badge">test<' in row


def test_an_inheriting_company_queues_with_the_global_settings_in_its_own_log(
    as_acme, as_globex, people
):
    configure(port=2525, sender_address="noreply@example.com")
    answer = as_acme.post(send_url(people.acme), {"queue_recipient": "ops@example.org"}, htmx=True)
    assert answer.status_code == 200, answer.text
    [mail] = stored_mails()
    assert (mail.company_id, mail.envelope_from, mail.is_test) == (
        people.acme.id,
        "noreply@example.com",
        True,
    )
    assert f"mail-row-{mail.id}" in as_acme.get(log_url(people.acme)).text
    assert as_globex.get(f"/mail/{mail.id}/test-status").status_code == 404
    assert as_globex.get(log_url(people.acme)).status_code == 404
    assert f"mail-row-{mail.id}" not in as_globex.get(log_url(people.globex)).text


def test_a_portuguese_admins_test_mail_arrives_written_in_portuguese(
    workers, as_acme, people, server
):
    people.acme_admin.language = "pt_BR"
    db.session.commit()
    configure(people.acme, port=server.port, sender_address="mail@acme.example.com")
    workers.start()
    answer = as_acme.post(send_url(people.acme), {"queue_recipient": "ops@example.org"}, htmx=True)
    assert answer.status_code == 200, answer.text
    assert "<p>E-mail de teste <a href=" in answer.text and "para ops@example.org:" in answer.text
    assert "Ver no registro de e-mails" in answer.text
    mail_id = int(MAIL_LINK.search(answer.text).group(1))
    wait_until_final(1)

    [arrived] = server.handler.messages
    parsed = email.message_from_bytes(arrived.data, policy=policy.default)
    assert parsed["Subject"] == "E-mail de teste do portal"
    assert parsed.get_content().splitlines() == [
        "admin colocou este e-mail de teste na fila de saída do portal.",
        "Ele foi enviado por um worker com as configurações de e-mail de Acme Ltd em vigor, "
        "como qualquer outro e-mail.",
    ]
    status = as_acme.get(f"/mail/{mail_id}/test-status", htmx=True).text
    assert '<span class="status status-sent">enviado</span>' in status


def test_a_refusal_is_written_in_the_admins_language(as_acme, people):
    people.acme_admin.language = "cs"
    db.session.commit()
    configure(people.acme, port=2525)
    answer = as_acme.post(send_url(people.acme), {"queue_recipient": "ops@"}, htmx=True)
    assert answer.status_code == 422
    assert "Zadejte adresu, na kterou se má testovací e-mail odeslat." in answer.text


def test_a_mail_the_outbox_refuses_is_told_in_the_admins_language(as_acme, people):
    people.acme_admin.language = "pt_BR"
    db.session.commit()
    configure(people.acme, port=2525, sender_address=None)  # no sender anywhere
    answer = as_acme.post(send_url(people.acme), {"queue_recipient": "ops@example.org"}, htmx=True)
    assert answer.status_code == 422
    assert "Nenhum endereço de remetente está configurado para esta empresa." in answer.text
    assert stored_mails() == []


@pytest.mark.parametrize("recipient", ["", "not an address", "ops@"])
def test_a_bad_recipient_is_refused_and_nothing_is_queued(as_superuser, people, recipient):
    configure(port=2525)
    answer = as_superuser.post(send_url(), {"queue_recipient": recipient}, htmx=True)
    assert answer.status_code == 422 and str(MSG_RECIPIENT) in answer.text
    assert stored_mails() == [] and audit_count("mail_settings.test_mail") == 0


def test_another_companys_tab_cannot_send(as_globex, people):
    configure(port=2525)
    answer = as_globex.post(send_url(people.acme), {"queue_recipient": "a@example.org"})
    assert answer.status_code == 404 and stored_mails() == []


def test_test_mails_are_limited_per_user(web, as_acme, people):
    web.config["MAIL_TEST_RATE_LIMIT"] = "2 per minute"
    configure(port=2525)
    for _ in range(2):
        sent = as_acme.post(send_url(people.acme), {"queue_recipient": "a@example.org"}, True)
        assert sent.status_code == 200
    third = as_acme.post(send_url(people.acme), {"queue_recipient": "a@example.org"}, True)
    assert third.status_code == 429 and "Too many test mails" in third.text
    assert len(stored_mails()) == 2


def test_the_tests_filter_lists_test_mails_and_connection_tests(as_superuser, people):
    configure(port=2525)
    queue(None, subject="Invoice")
    assert (
        as_superuser.post(send_url(), {"queue_recipient": "a@example.org"}, True).status_code == 200
    )
    db.session.add(
        AuditEntry(action="mail_settings.test", changes={"result": "Delivered"}, company_id=None)
    )
    db.session.commit()
    everything = as_superuser.get("/mail").text
    assert "Invoice 0" in everything and SUBJECT in everything
    tests = as_superuser.get(log_url()).text
    assert "Invoice 0" not in tests and SUBJECT in tests
    connection_tests = tests.split('id="connection-tests"')[1]
    assert "Result: Delivered" in connection_tests
    assert 'href="/settings/history?kind=tests"' in connection_tests
    assert 'id="connection-tests"' not in everything
    bad = as_superuser.get("/mail?type=spam", htmx=True)
    assert bad.status_code == 422 and "Choose a type from the list." in bad.text


def test_the_queued_test_mail_is_in_the_history_not_the_short_list(as_superuser, people):
    configure(port=2525)
    assert (
        as_superuser.post(send_url(), {"queue_recipient": "a@example.org"}, True).status_code == 200
    )
    [mail] = stored_mails()
    history = as_superuser.get("/settings/history?kind=tests").text
    assert "Test mail queued" in history and f"#{mail.id}" in history
    short = as_superuser.get(GLOBAL_URL).text.split("Last changes")[1]
    assert "Test mail queued" not in short


def test_the_global_page_offers_the_button(as_superuser, people):
    page = as_superuser.get(GLOBAL_URL).text
    assert "Send a test mail through the queue" in page
    assert 'hx-post="/settings/mail/test-mail"' in page


def test_an_inheriting_company_tab_offers_the_button_too(as_acme, people):
    tab = as_acme.get(company_url(people.acme)).text  # following the global settings in all
    assert f'hx-post="{send_url(people.acme)}"' in tab and 'id="test-button"' in tab
