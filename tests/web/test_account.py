"""My account: the language the portal speaks to a user, chosen there or found for them."""

import pytest
from support.web import Browser

from portal.extensions import db
from portal.models import User

LANGUAGE_URL = "/account/language"


def language_of(user: User) -> str | None:
    db.session.expire_all()
    return db.session.get(User, user.id).language


def speaking(browser: Browser, accept_language: str) -> Browser:
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = accept_language
    return browser


def test_the_page_offers_every_language_and_automatic_selected_by_default(as_acme):
    page = as_acme.get("/account").text
    assert '<option selected value="">Automatic (company default or browser)</option>' in page
    for code, name in [("pt_BR", "Português (Brasil)"), ("pl", "Polski"), ("cs", "Čeština")]:
        assert f'<option value="{code}">{name}</option>' in page


@pytest.mark.parametrize("htmx", [False, True], ids=["form", "htmx"])
def test_saving_polish_makes_my_account_speak_polish(as_acme, people, htmx):
    saved = as_acme.post(LANGUAGE_URL, {"language": "pl"}, htmx=htmx)
    if htmx:
        assert saved.status_code == 204 and saved.headers["HX-Redirect"] == "/account"
    else:
        assert saved.status_code == 303 and saved.headers["Location"] == "/account"
    assert language_of(people.acme_admin) == "pl"

    page = as_acme.get("/account").text
    assert "<h1>Moje konto</h1>" in page and "Zapisano język." in page
    assert "Administrator firmy Acme Ltd" in page and ">Wyloguj się</button>" in page
    assert "Sesja logowania trwa najwyżej" in page and "nie jest używana" in page
    assert '<option selected value="pl">Polski</option>' in page


def test_automatic_follows_the_browser(as_acme, people):
    people.acme_admin.language = "pl"
    db.session.commit()
    assert as_acme.post(LANGUAGE_URL, {"language": ""}).status_code == 303
    assert language_of(people.acme_admin) is None

    assert "<h1>Minha conta</h1>" in speaking(as_acme, "pt-BR,pt;q=0.9").get("/account").text
    assert "<h1>Můj účet</h1>" in speaking(as_acme, "cs;q=0.8,de;q=0.5").get("/account").text
    assert "<h1>My account</h1>" in speaking(as_acme, "de").get("/account").text


def test_a_company_default_wins_over_the_browser_for_its_admins(as_acme, people):
    people.acme.default_language = "ro"
    db.session.commit()
    page = speaking(as_acme, "pt-BR,pt;q=0.9").get("/account").text
    assert "<h1>Contul meu</h1>" in page and "Administrator al companiei Acme Ltd" in page

    as_acme.post(LANGUAGE_URL, {"language": "cs"})
    assert "<h1>Můj účet</h1>" in as_acme.get("/account").text  # the user's own choice first


@pytest.mark.parametrize("value", ["xx", "pt-BR", "en_US", "<b>pl</b>"])
def test_an_unknown_language_is_refused_at_the_field_and_nothing_is_saved(as_acme, people, value):
    people.acme_admin.language = "pl"
    db.session.commit()
    speaking(as_acme, "en")
    refused = as_acme.post(LANGUAGE_URL, {"language": value}, htmx=True)
    assert refused.status_code == 422
    assert refused.text.lstrip().startswith('<section class="card" id="language">')
    assert '<div class="field invalid" id="field-language">' in refused.text
    assert "Wybierz jeden z języków z listy." in refused.text  # in the saved language still
    assert language_of(people.acme_admin) == "pl"

    whole = as_acme.post(LANGUAGE_URL, {"language": value})
    assert whole.status_code == 422 and "<h1>Moje konto</h1>" in whole.text


def test_the_language_form_needs_its_csrf_token(as_acme, people):
    refused = as_acme.client.post(LANGUAGE_URL, data={"language": "pl"})
    assert refused.status_code == 400
    assert language_of(people.acme_admin) is None


def test_a_superuser_chooses_a_language_too(as_superuser, people):
    as_superuser.post(LANGUAGE_URL, {"language": "pt_BR"})
    page = as_superuser.get("/account").text
    assert "Superusuário" in page and ">Empresas</a>" in page
