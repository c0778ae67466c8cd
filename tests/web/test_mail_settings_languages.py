"""The mail settings pages in the user's language: labels, provenance, messages at the fields."""

import pytest
from sqlalchemy import func, select
from support.factories import global_with_password, mail_config
from support.forms import GLOBAL_URL, VALID, at_field, company_url, saved_global

from portal.extensions import db
from portal.models import AuditEntry, MailConfig

# The product's Portuguese words, each at the field whose label it is.
PORTUGUESE_LABELS = {
    "host": "Host do servidor",
    "port": "Porta do servidor",
    "security": "Segurança",
    "timeout_seconds": "Timeout do SMTP (em segundos)",
    "auth_enabled": "Autenticação",
    "default_sender_enabled": "Remetente padrão",
    "group_sends": "Agrupar e-mails no envio",
}
CZECH_LABELS = {
    "host": "Hostitel serveru",
    "port": "Port serveru",
    "security": "Zabezpečení",
    "timeout_seconds": "Časový limit SMTP (v sekundách)",
    "auth_enabled": "Ověřování",
    "default_sender_enabled": "Výchozí odesílatel",
}


def speaks(user, language: str | None) -> None:
    user.language = language
    db.session.commit()


def audit_count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEntry))


def row_values(config: MailConfig) -> tuple:
    return (config.host, config.port, config.timeout_seconds, config.sender_address)


@pytest.fixture
def saved(as_superuser):
    """The global settings saved once, in English, as the row a bad save must leave alone."""
    assert as_superuser.post(GLOBAL_URL, VALID, htmx=True).status_code == 200
    return row_values(saved_global())


def test_the_global_page_speaks_the_products_portuguese(as_superuser, people):
    speaks(people.superuser, "pt_BR")
    page = as_superuser.get(GLOBAL_URL).text
    assert "<h1>Configurações → E-mail</h1>" in page
    for name, label in PORTUGUESE_LABELS.items():
        assert label in at_field(page, name), name
    assert page.count("Testar conexão") >= 2  # the section's title and its button
    assert "<legend>Servidor</legend>" in page and "<legend>Entrega</legend>" in page
    assert "Salvar</button>" in page
    assert "SMTP timeout" not in page and "Default sender" not in page


def test_the_global_page_speaks_czech_from_the_browsers_language(browser, people):
    browser.login(people.superuser.email)
    page = browser.client.get(GLOBAL_URL, headers={"Accept-Language": "cs,en;q=0.5"}).text
    for name, label in CZECH_LABELS.items():
        assert label in at_field(page, name), name
    assert "Otestovat připojení" in page and "Uložit</button>" in page
    assert "Host do servidor" not in page


def test_the_security_choices_keep_the_protocol_names(as_superuser, people):
    speaks(people.superuser, "pt_BR")
    shown = at_field(as_superuser.get(GLOBAL_URL).text, "security")
    assert ">Nenhuma<" in shown and ">STARTTLS<" in shown and ">SSL/TLS<" in shown


def test_a_companys_tab_says_in_portuguese_where_each_value_comes_from(as_acme, people):
    global_with_password(timeout_seconds=60)
    speaks(people.acme_admin, "pt_BR")
    page = as_acme.get(company_url(people.acme)).text
    for label in ("Host do servidor", "Porta do servidor", "Segurança", "Autenticação"):
        assert f"<dt>{label}</dt>" in page, label
    assert "<dt>Timeout do SMTP</dt>" in page and "<dt>Agrupar e-mails no envio</dt>" in page
    assert "As configurações do servidor seguem as configurações globais" in page
    assert 'class="badge source-badge global">Global</span>' in page
    assert "Usar global" in page and "Substituir" in page
    assert "Testar conexão" in page and "follow the global settings" not in page


def test_a_companys_own_groups_show_their_inputs_in_czech(as_acme, people):
    global_with_password(timeout_seconds=60)
    mail_config(people.acme, host="smtp.acme.example.com", port=465, security="ssl")
    people.acme.use_own_mail_settings = True
    people.acme.default_language = "cs"  # the company's language: its admin chose none
    db.session.commit()
    page = as_acme.get(company_url(people.acme)).text
    for name in ("host", "port", "security", "timeout_seconds"):
        assert CZECH_LABELS[name] in at_field(page, name), name
    assert "Nastavení serveru určené pouze pro tuto společnost." in page
    assert ">Tato společnost<" in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("port", "70000", "Informe um número inteiro de 1 a 65535."),
        ("timeout_seconds", "181", "Informe um número inteiro de 10 a 180."),
        ("timeout_seconds", "9", "Informe um número inteiro de 10 a 180."),
        ("sender_address", "not-an-address", "Informe um endereço de e-mail válido:"),
    ],
)
def test_a_bad_value_from_a_portuguese_user_is_refused_at_its_field_and_nothing_saved(
    as_superuser, people, saved, field, value, message
):
    speaks(people.superuser, "pt_BR")
    before = audit_count()
    data = {**VALID, "host": "smtp.other.example.com", "password": "", field: value}
    response = as_superuser.post(GLOBAL_URL, data, htmx=True)
    assert response.status_code == 422
    assert message in at_field(response.text, field)
    assert "Nada foi salvo: corrija os campos marcados abaixo." in response.text
    assert row_values(saved_global()) == saved and audit_count() == before


def test_a_bad_timeout_from_a_polish_user_is_refused_on_the_company_tab(as_acme, people):
    global_with_password(timeout_seconds=60)
    speaks(people.acme_admin, "pl")
    data = {
        "override_server": "company",
        "override_auth": "company",
        "override_sender": "global",
        "override_delivery": "global",
        "shown": ["server", "auth"],
        "host": "smtp.acme.example.com",
        "port": "465",
        "security": "ssl",
        "timeout_seconds": "500",
        "max_sessions": "2",
    }
    response = as_acme.post(company_url(people.acme), data, htmx=True)
    assert response.status_code == 422
    assert "Wprowadź liczbę całkowitą od 10 do 180." in at_field(response.text, "timeout_seconds")
    assert "Niczego nie zapisano" in response.text
    db.session.expire_all()
    assert people.acme.mail_config is None and audit_count() == 0


def test_the_messages_kept_in_english_for_the_worker_are_shown_translated(as_superuser, people):
    speaks(people.superuser, "pt_BR")
    data = {**VALID, "security": "none", "port": "25", "password": ""}
    response = as_superuser.post(GLOBAL_URL, data, htmx=True)
    assert response.status_code == 422
    assert "Com Segurança “Nenhuma” a senha atravessaria a rede" in at_field(
        response.text, "security"
    )
    assert saved_global() is None or saved_global().host is None


def test_the_password_asked_for_again_is_asked_in_portuguese(as_superuser, people, saved):
    speaks(people.superuser, "pt_BR")
    data = {**VALID, "port": "2525", "password": ""}
    response = as_superuser.post(GLOBAL_URL, data, htmx=True)
    assert response.status_code == 422
    assert "O host, a porta, a segurança ou o usuário mudou: informe a senha novamente." in (
        response.text
    )
    assert row_values(saved_global()) == saved


def test_a_save_is_confirmed_and_its_history_labelled_in_portuguese(as_superuser, people, saved):
    speaks(people.superuser, "pt_BR")
    response = as_superuser.post(GLOBAL_URL, {**VALID, "port": "2525", "password": "x"}, htmx=True)
    assert response.status_code == 200
    assert "Configurações de e-mail salvas." in response.text
    assert "<strong>Porta do servidor</strong>" in response.text


def test_the_plain_form_save_flashes_the_confirmation_in_portuguese(as_superuser, people):
    speaks(people.superuser, "pt_BR")
    assert as_superuser.post(GLOBAL_URL, VALID).status_code == 302
    assert "Configurações de e-mail salvas." in as_superuser.get(GLOBAL_URL).text


def test_an_invalid_authorization_link_is_explained_in_romanian(as_superuser, people):
    speaks(people.superuser, "ro")
    response = as_superuser.get("/oauth/callback?state=unknown&code=x")
    assert response.status_code == 400
    assert "Autorizarea nu a fost finalizată" in response.text
    assert "<strong>Autorizează</strong>" in response.text
