"""System mails: the admin invitation and the password reset, delivered to a real SMTP server."""

import email
import re
from email import policy
from email.message import EmailMessage

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select
from support.factories import configure, run_queued_jobs, stored_mails
from support.web import Browser
from support.workers import wait_until_final

from portal import accounts, delivery
from portal.extensions import db
from portal.models import Company, User
from portal.web.auth import MSG_RESET_SENT

NEW_PASSWORD = "a long new passphrase"
LINK = re.compile(r"http://portal\.test(/set-password/[A-Za-z0-9_.\-]+)")
CARD = re.compile(r'<section class="card narrow">.*?</section>', re.S)


@pytest.fixture
def global_settings(app, server):
    """Global settings with the default sender, pointing at the test server."""
    return configure(port=server.port, sender_address="noreply@example.com", sender_name="Portal")


def deliver_only_mail(server) -> EmailMessage:
    """Deliver the one queued mail and return it as the server received it."""
    (row,) = stored_mails()
    delivery.deliver(row.id)
    (arrived,) = server.handler.messages
    return email.message_from_bytes(arrived.data, policy=policy.default)


def body(message: EmailMessage, subtype: str = "plain") -> str:
    return message.get_body(preferencelist=(subtype,)).get_content()


def link_in(message: EmailMessage) -> str:
    """The set-password path from the text body; the HTML body carries the same link."""
    path = LINK.search(body(message)).group(1)
    assert f"http://portal.test{path}" in body(message, "html")
    return path


def invite(superuser: Browser, company: Company, address: str = "new.admin@example.org"):
    url = f"/companies/{company.id}/admins"
    return superuser.post(url, {"email": address, "name": "Nina"}, htmx=True)


def use_link(web, path: str) -> Browser:
    """Open the link in a fresh browser and set a password; the link must work."""
    visitor = Browser(web.test_client())
    assert visitor.get(path).status_code == 200
    done = visitor.post(path, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 302 and "/login" not in done.headers["Location"]
    return visitor


def assert_dead(web, path: str) -> None:
    response = Browser(web.test_client()).get(path)
    assert response.status_code == 404 and "This link is not valid" in response.text


def forgot(browser: Browser, address: str):
    """Ask for a reset link, then let a worker run the job that looks the address up."""
    response = browser.post("/forgot-password", {"email": address})
    run_queued_jobs()
    return response


# --- invitation --------------------------------------------------------------------------


def sender(message: EmailMessage) -> tuple[str, str]:
    (address,) = message["From"].addresses
    return address.display_name, address.addr_spec


@pytest.mark.parametrize(
    ("own_sender", "expected_from"),
    [
        (None, ("Portal", "noreply@example.com")),
        ("mail@acme.example.com", ("", "mail@acme.example.com")),
    ],
    ids=["default-sender", "company-sender"],
)
def test_invitation_mail_arrives_from_the_sender_rule_and_its_link_works_once(
    as_superuser, web, people, server, global_settings, own_sender, expected_from
):
    if own_sender:
        configure(people.acme, port=server.port, sender_address=own_sender, sender_name="")
    response = invite(as_superuser, people.acme)
    assert response.status_code == 200
    assert "Invitation mail to new.admin@example.org is queued for delivery." in response.text

    mail = deliver_only_mail(server)
    assert sender(mail) == expected_from
    assert str(mail["To"]) == "new.admin@example.org"
    assert mail["Subject"] == "You are invited to manage mail for Acme Ltd"
    assert server.handler.messages[0].rcpt_tos == ["new.admin@example.org"]
    path = link_in(mail)
    assert path in response.text  # the superuser's fallback copy

    visitor = use_link(web, path)
    assert visitor.get("/").headers["Location"].endswith(f"/companies/{people.acme.id}/email")
    assert_dead(web, path)
    invited = db.session.scalar(select(User).where(User.email == "new.admin@example.org"))
    assert invited.company_id == people.acme.id


def test_invitation_html_escapes_the_company_name(as_superuser, people, server, global_settings):
    people.acme.name = "Bits & <b>Bytes</b>"
    db.session.commit()
    invite(as_superuser, people.acme)
    html = body(deliver_only_mail(server), "html")
    assert "Bits &amp; &lt;b&gt;Bytes&lt;/b&gt;" in html and "<b>Bytes" not in html


def test_invitation_without_a_sender_still_adds_the_admin_and_shows_the_link(
    as_superuser, web, people
):
    response = invite(as_superuser, people.acme)
    assert response.status_code == 200
    assert "the invitation mail could not be queued: No sender address" in response.text
    path = LINK.search(response.text).group(1)
    assert stored_mails() == []
    use_link(web, path)


def test_assigning_an_active_user_sends_no_invitation(as_superuser, people, global_settings):
    lone = User(email="lone@example.org", name="Lone", password_hash=people.superuser.password_hash)
    db.session.add(lone)
    db.session.commit()
    response = invite(as_superuser, people.globex, "lone@example.org")
    assert response.status_code == 200 and "Invitation mail" not in response.text
    assert stored_mails() == []


# --- forgot password ---------------------------------------------------------------------


def test_login_page_links_to_forgot_password(browser):
    assert 'href="/forgot-password"' in browser.get("/login").text
    assert browser.get("/forgot-password").status_code == 200


@pytest.mark.parametrize("who", ["acme_admin", "superuser"])
def test_reset_mail_arrives_with_a_link_that_works_once(
    browser, web, people, server, global_settings, who
):
    user = getattr(people, who)
    response = forgot(browser, user.email.upper())
    assert response.status_code == 200 and str(MSG_RESET_SENT) in response.text

    mail = deliver_only_mail(server)
    assert sender(mail) == ("Portal", "noreply@example.com")
    assert str(mail["To"]) == user.email
    (row,) = stored_mails()
    assert row.company_id == user.company_id  # the superuser's goes by the global settings
    path = link_in(mail)

    use_link(web, path)
    assert_dead(web, path)
    fresh = Browser(web.test_client())
    assert fresh.login(user.email, NEW_PASSWORD).status_code == 302


def test_reset_for_company_with_own_settings_uses_its_sender(
    browser, people, server, global_settings
):
    configure(people.acme, port=server.port, sender_address="mail@acme.example.com")
    forgot(browser, people.acme_admin.email)
    assert sender(deliver_only_mail(server))[1] == "mail@acme.example.com"


@pytest.mark.parametrize("address", ["nobody@example.com", "removed@example.com", "not an email"])
def test_unknown_address_gets_the_same_page_and_no_mail(browser, people, global_settings, address):
    db.session.add(User(email="removed@example.com", name="Removed"))  # admin of no company
    db.session.commit()
    known = forgot(browser, people.acme_admin.email)
    unknown = forgot(browser, address)
    assert known.status_code == unknown.status_code == 200
    assert CARD.search(known.text).group(0) == CARD.search(unknown.text).group(0)
    assert [row.recipients for row in stored_mails()] == [[people.acme_admin.email]]


def test_empty_address_is_asked_for_again(browser, people):
    response = forgot(browser, " ")
    assert response.status_code == 422 and "Enter your email." in response.text
    assert str(MSG_RESET_SENT) not in response.text


def test_reset_without_a_sender_answers_the_same(browser, people):
    response = forgot(browser, people.acme_admin.email)
    assert response.status_code == 200 and str(MSG_RESET_SENT) in response.text
    assert stored_mails() == []


def test_expired_reset_link_is_refused_but_an_invitation_lives_longer(
    as_superuser, browser, web, people, server, global_settings
):
    forgot(browser, people.acme_admin.email)
    reset_path = link_in(deliver_only_mail(server))
    web.config["PASSWORD_RESET_MAX_AGE_SECONDS"] = -1  # every reset link is too old now
    assert_dead(web, reset_path)

    invite(as_superuser, people.acme)
    invitation = next(row for row in stored_mails() if row.recipients == ["new.admin@example.org"])
    delivery.deliver(invitation.id)
    mail = email.message_from_bytes(server.handler.messages[-1].data, policy=policy.default)
    use_link(web, link_in(mail))


def test_too_many_reset_requests_are_refused(browser, web, people):
    for _ in range(5):
        assert forgot(browser, "nobody@example.com").status_code == 200
    assert browser.get("/forgot-password").status_code == 200  # only posts count
    refused = forgot(browser, "nobody@example.com")
    assert refused.status_code == 429
    assert "Too many reset requests (5 per 15 minute" in refused.text
    assert int(refused.headers["Retry-After"]) > 0
    assert forgot(Browser(web.test_client()), people.acme_admin.email).status_code == 200


# --- tokens ------------------------------------------------------------------------------


def test_token_purpose_sets_its_lifetime(app, people):
    user = people.acme_admin
    invitation = accounts.password_token(user)
    reset = accounts.password_token(user, accounts.RESET)
    app.config["PASSWORD_RESET_MAX_AGE_SECONDS"] = -1
    assert accounts.user_for_token(invitation) == user
    assert accounts.user_for_token(reset) is None
    assert accounts.user_for_token(invitation, max_age=-1) is None


def test_token_from_before_purposes_is_an_invitation(app, people):
    user = people.acme_admin
    serializer = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="set-password")
    legacy = serializer.dumps({"uid": user.id, "fp": accounts._fingerprint(user)})
    assert accounts.user_for_token(legacy) == user
    app.config["INVITATION_MAX_AGE_SECONDS"] = -1
    assert accounts.user_for_token(legacy) is None


# --- in the recipient's language ---------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "valid_for"),
    [(1, "1 godzinę"), (3, "3 godziny"), (5, "5 godzin"), (22, "22 godziny"), (168, "7 dni")],
)
def test_invitation_to_an_admin_of_a_polish_company_arrives_in_polish_with_the_count_right(
    as_superuser, web, people, server, global_settings, hours, valid_for
):
    people.acme.default_language = "pl"
    db.session.commit()
    web.config["INVITATION_MAX_AGE_SECONDS"] = hours * 3600
    response = invite(as_superuser, people.acme)
    assert "Invitation mail to new.admin@example.org is queued" in response.text  # his own

    mail = deliver_only_mail(server)
    assert mail["Subject"] == "Zaproszenie do zarządzania pocztą firmy Acme Ltd"
    text, html = body(mail), body(mail, "html")
    assert text.splitlines()[0] == "Dzień dobry Nina,"
    assert "Zapraszamy do zarządzania pocztą wychodzącą firmy Acme Ltd w portalu poczty." in text
    sentence = f"Ustaw hasło, korzystając z tego linku; działa on jednorazowo przez {valid_for}:"
    assert sentence in text and sentence in html
    assert "firmy <strong>Acme Ltd</strong>" in html and '<html lang="pl">' in html
    assert "invited" not in text and "invited" not in html
    use_link(web, link_in(mail))


def test_an_invited_users_own_language_wins_over_the_companys(
    as_superuser, people, server, global_settings
):
    people.acme.default_language = "pl"
    db.session.add(User(email="new.admin@example.org", name="Nina", language="cs"))
    db.session.commit()
    invite(as_superuser, people.acme)
    mail = deliver_only_mail(server)
    assert mail["Subject"] == "Pozvánka ke správě e-mailů společnosti Acme Ltd"
    assert "funguje jen jednou a platí 7 dní:" in body(mail)


@pytest.mark.parametrize(
    ("language", "subject", "sentence"),
    [
        ("ro", "Resetați-vă parola pentru portalul de e-mail", "o singură dată, timp de 1 oră:"),
        ("pt_BR", "Redefina sua senha do portal de e-mail", "uma única vez e vale por 1 hora:"),
        (None, "Reset your password for the mail portal", "it works once and for 1 hour:"),
    ],
)
def test_reset_mail_is_written_in_the_recipients_language_not_the_askers(
    web, people, server, global_settings, language, subject, sentence
):
    people.acme_admin.language = language
    db.session.commit()
    asker = Browser(web.test_client())
    asker.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "cs"
    response = forgot(asker, people.acme_admin.email)  # the job runs outside any request
    assert "odkaz pro obnovení hesla je na cestě" in response.text  # the asker's page

    mail = deliver_only_mail(server)
    assert mail["Subject"] == subject
    assert sentence in body(mail) and sentence in body(mail, "html")


def test_the_worker_process_writes_the_reset_mail_in_the_company_language(
    web, people, server, global_settings, workers
):
    people.acme.default_language = "pl"
    db.session.commit()
    workers.start_ready()
    response = Browser(web.test_client()).post(
        "/forgot-password", {"email": people.acme_admin.email}
    )
    assert response.status_code == 200
    wait_until_final(1)

    (arrived,) = server.handler.messages
    mail = email.message_from_bytes(arrived.data, policy=policy.default)
    assert mail["Subject"] == "Zresetuj hasło do portalu poczty"
    assert "działa on jednorazowo przez 1 godzinę:" in body(mail)
