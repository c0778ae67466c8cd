import pytest
from support.web import Browser

from portal.extensions import db
from portal.web.auth import MSG_BAD_LOGIN


def test_login_lands_superuser_on_companies(browser, people):
    response = browser.login(people.superuser.email)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/companies")


def test_login_lands_company_admin_on_own_email_tab(browser, people):
    response = browser.login(people.acme_admin.email)
    assert response.headers["Location"].endswith(f"/companies/{people.acme.id}/email")


def test_wrong_password_and_unknown_user_get_the_same_message(browser, people):
    wrong = browser.login(people.superuser.email, "not the password")
    unknown = browser.login("nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 422
    assert str(MSG_BAD_LOGIN) in wrong.text and str(MSG_BAD_LOGIN) in unknown.text
    assert "nobody@example.com" in unknown.text  # the typed email is kept, nothing else told


def test_password_is_stored_as_argon2_hash(people):
    assert people.superuser.password_hash.startswith("$argon2id$")


def test_logout_ends_the_session(browser, people):
    browser.login(people.superuser.email)
    browser.post("/logout", {})
    assert browser.get("/companies").status_code == 302


BRAZIL = {"Accept-Language": "pt-BR,pt;q=0.9"}


def test_the_login_page_speaks_the_browsers_brazilian_portuguese(web):
    page = web.test_client().get("/login", headers=BRAZIL).text
    assert "<title>Entrar · Portal de e-mail</title>" in page and "<h1>Entrar</h1>" in page
    assert '<label for="email">E-mail</label>' in page
    assert '<label for="password">Senha</label>' in page
    assert '<button type="submit" class="primary">Entrar</button>' in page
    assert ">Esqueceu a senha?</a>" in page
    assert "Log in" not in page and "Password" not in page


@pytest.mark.parametrize(
    ("header", "heading"),
    [
        ("pt-PT,en;q=0.5", "<h1>Entrar</h1>"),  # a region the portal lacks: its sibling
        ("pt", "<h1>Entrar</h1>"),
        ("cs-CZ,cs;q=0.9", "<h1>Přihlásit se</h1>"),
        ("de-DE,de;q=0.9,pl;q=0.5", "<h1>Zaloguj się</h1>"),
        ("de-DE,fr;q=0.9", "<h1>Log in</h1>"),
    ],
)
def test_the_login_page_takes_the_best_language_the_browser_accepts(web, header, heading):
    page = web.test_client().get("/login", headers={"Accept-Language": header}).text
    assert heading in page


def test_a_wrong_password_is_told_in_the_browsers_language(web, people):
    client = web.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "pt-BR,pt;q=0.9"
    refused = Browser(client).login(people.acme_admin.email, "not the password")
    assert refused.status_code == 422 and "E-mail ou senha incorretos." in refused.text
    empty = Browser(client).login("", "")
    assert "Informe o e-mail." in empty.text and "Informe a senha." in empty.text


def test_error_pages_speak_the_users_language(as_acme, people):
    people.acme_admin.language = "pl"
    db.session.commit()
    missing = as_acme.get("/companies/999999/email")
    assert missing.status_code == 404 and "<h1>Nie znaleziono</h1>" in missing.text
    refused = as_acme.get("/companies")
    assert refused.status_code == 403 and "<h1>Brak dostępu</h1>" in refused.text
