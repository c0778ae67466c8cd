"""A company's default language: set by the superuser, audited, and the one its admins read."""

import re

import pytest
from sqlalchemy import select
from support.web import Browser

from portal.extensions import db
from portal.models import AuditEntry, Company

ENGLISH = {"Accept-Language": "en-US,en;q=0.9"}


def edit_url(company) -> str:
    return f"/companies/{company.id}/rename"


def save(browser, company, language: str, name: str | None = None):
    data = {"name": name or company.name, "default_language": language}
    return browser.post(edit_url(company), data, htmx=True)


def audit_rows(company) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.company_id == company.id)
    return list(db.session.scalars(query.order_by(AuditEntry.id)))


def field_of(html: str) -> str:
    found = re.search(
        r'<div class="field invalid" id="field-default_language">(.*?)</div>', html, re.S
    )
    assert found, "the default language field is not marked invalid"
    return found.group(1)


def test_the_edit_row_offers_every_language_and_the_browsers_choice(as_superuser, people):
    row = as_superuser.get(edit_url(people.acme)).text
    assert '<option selected value="">None (each admin\'s browser)</option>' in row
    for code, name in [("pt_BR", "Português (Brasil)"), ("pl", "Polski"), ("cs", "Čeština")]:
        assert f'<option value="{code}">{name}</option>' in row


def test_the_superuser_sets_the_default_language_and_the_change_is_audited(as_superuser, people):
    response = save(as_superuser, people.acme, "pl")
    assert response.status_code == 200
    assert '<td class="default-language">Polski</td>' in response.text
    db.session.expire_all()
    assert db.session.get(Company, people.acme.id).default_language == "pl"
    assert as_superuser.get(edit_url(people.acme)).text.count("<option selected") == 1
    assert (
        '<option selected value="pl">Polski</option>'
        in as_superuser.get(edit_url(people.acme)).text
    )

    assert save(as_superuser, people.acme, "").status_code == 200
    db.session.expire_all()
    assert db.session.get(Company, people.acme.id).default_language is None
    assert [(e.action, e.changes) for e in audit_rows(people.acme)] == [
        ("company.rename", {"default_language": {"old": None, "new": "pl"}}),
        ("company.rename", {"default_language": {"old": "pl", "new": None}}),
    ]
    assert "Each admin's browser" in as_superuser.get("/companies").text


def test_a_rename_and_a_language_saved_together_are_one_audit_entry(as_superuser, people):
    assert save(as_superuser, people.globex, "cs", name="Globex Group").status_code == 200
    assert [e.changes for e in audit_rows(people.globex)] == [
        {
            "name": {"old": "Globex Corp", "new": "Globex Group"},
            "default_language": {"old": None, "new": "cs"},
        }
    ]


@pytest.mark.parametrize("value", ["xx", "pt-BR", "en_US", "<b>pl</b>"])
def test_an_unknown_language_is_refused_at_the_field_and_nothing_is_saved(
    as_superuser, people, value
):
    response = save(as_superuser, people.acme, value, name="Acme Renamed")
    assert response.status_code == 422
    field = field_of(response.text)
    assert "Choose a language from the list." in field and 'aria-invalid="true"' in field
    db.session.expire_all()
    company = db.session.get(Company, people.acme.id)
    assert company.name == "Acme Ltd" and company.default_language is None
    assert audit_rows(people.acme) == []


def test_the_companys_admins_read_its_language_over_an_english_browser(as_superuser, web, people):
    assert save(as_superuser, people.acme, "pt_BR").status_code == 200
    acme, globex = Browser(web.test_client()), Browser(web.test_client())
    assert acme.login(people.acme_admin.email).status_code == 302
    assert globex.login(people.globex_admin.email).status_code == 302
    assert people.acme_admin.language is None

    url = f"/companies/{people.acme.id}/history"
    page = acme.client.get(url, headers=ENGLISH).text
    assert ">Chaves de API</a>" in page and ">Histórico</a>" in page
    assert "Todas as alterações nas configurações, chaves e administradores de Acme Ltd" in page
    other = globex.client.get(f"/companies/{people.globex.id}/history", headers=ENGLISH).text
    assert ">API keys</a>" in other and "Chaves de API" not in other


def test_the_admins_own_language_wins_over_the_companys(as_superuser, web, people):
    assert save(as_superuser, people.acme, "pt_BR").status_code == 200
    people.acme_admin.language = "pl"
    db.session.commit()
    acme = Browser(web.test_client())
    acme.login(people.acme_admin.email)
    page = acme.client.get(f"/companies/{people.acme.id}/api-keys", headers=ENGLISH).text
    assert "<h2>Klucze API</h2>" in page and "Utwórz klucz" in page
